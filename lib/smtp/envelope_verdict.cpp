#include "envelope_verdict.hpp"

namespace mailroom::smtp::detail {

envelope_verdict judge_envelope(const reply& mail, std::span<const recipient_status> rcpts,
                                const reply* data)
{
    using kind = envelope_verdict::kind;
    envelope_verdict v;
    const auto cls = [](const reply& r) {
        return r.code / 100;
    };

    bool out_of_step = cls(mail) == 3 || (data && cls(*data) == 2);
    for (const auto& rs : rcpts)
        out_of_step |= cls(rs.response) == 3;
    if (out_of_step) {
        v.k = kind::out_of_step;
        return v;
    }

    auto closing = [&](const reply& r, const char* step) {
        if (r.code != 421)
            return false;
        v = {kind::closing, &r, step};
        return true;
    };
    if (closing(mail, "MAIL FROM"))
        return v;
    for (const auto& rs : rcpts)
        if (closing(rs.response, "RCPT TO"))
            return v;
    if (data && closing(*data, "DATA"))
        return v;

    const reply* worst = nullptr;
    std::size_t accepted = 0;
    for (const auto& rs : rcpts) {
        if (rs.accepted())
            ++accepted;
        else if (!worst || cls(rs.response) > cls(*worst))
            worst = &rs.response;
    }
    // RFC 5321 §4.2.1: a 3yz to DATA, 354 or not, asks for the data.
    v.end_empty_data = data && cls(*data) == 3;
    v.rset = cls(mail) == 2;
    if (cls(mail) != 2) {
        v.k = kind::refused, v.cause = &mail, v.step = "MAIL FROM";
    } else if (accepted == 0) {
        v.k = kind::refused, v.cause = worst ? worst : &mail, v.step = "RCPT TO";
    } else if (data && cls(*data) != 3) {
        v.k = kind::refused, v.cause = data, v.step = "DATA";
    } else {
        v = {};
    }
    return v;
}

} // namespace mailroom::smtp::detail

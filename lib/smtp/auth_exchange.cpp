// SMTP AUTH (RFC 4954 §4) around the SASL mechanisms.
#include "auth_exchange.hpp"

#include "command.hpp"
#include "crypto.hpp"
#include "detail/base64.hpp"

#include <mailroom/smtp/reply_error.hpp>

namespace mailroom::smtp::detail {

namespace {

// No mechanism here needs more than two challenges (SCRAM: server-first, server-final); a
// server that keeps challenging is looping or hostile.
constexpr int max_challenges = 8;

} // namespace

result<auth_exchange> auth_exchange::start(auth_mechanism m, const sasl_credentials& c,
                                           std::string& out, const sasl_options& o)
{
    auto client = make_sasl_client(m, c, o);
    if (!client)
        return client.error();
    auth_exchange ex(std::move(*client));
    auto initial = ex.client_->initial_response();
    const auto name = to_string(m);
    std::optional<std::string_view> inline_ir;
    if (initial) {
        // RFC 4954 §4: an initial response that would push AUTH past the command line limit
        // MUST NOT be sent with it; it goes in answer to the server's empty challenge.
        if (auth_initial_response_fits(name, initial->size()))
            inline_ir = *initial;
        else
            ex.pending_initial_ = std::move(initial);
    }
    auto ec = format_auth(out, name, inline_ir);
    if (initial)
        cleanse(*initial);
    if (ec)
        return ec;
    return ex;
}

auth_exchange::step auth_exchange::cancel(error e, std::string& out)
{
    // RFC 4954 §4: a client that can't accept a challenge answers "*", and the server
    // replies 501; that reply ends the exchange.
    format_auth_cancel(out);
    cancel_reason_ = e;
    state_ = state::cancelled;
    return step::send;
}

auth_exchange::step auth_exchange::on_reply(const reply& r, std::string& out, error_code& ec)
{
    ec.clear();
    if (state_ == state::finished) {
        ec = error::protocol_error;
        return step::done;
    }
    if (state_ == state::cancelled) {
        state_ = state::finished;
        ec = cancel_reason_;
        return step::done;
    }
    if (r.code == 235) {
        state_ = state::finished;
        ec = pending_initial_ ? error_code(error::sasl_incomplete) : client_->succeeded();
        return step::done;
    }
    if (r.code != 334) {
        state_ = state::finished;
        ec = r.code >= 400 ? make_error_code(r) : error_code(error::protocol_error);
        return step::done;
    }

    // RFC 4954 §4: the challenge is the whole text of a 334 reply, and nothing else.
    if (r.lines.size() != 1) {
        state_ = state::finished;
        ec = error::protocol_error;
        return step::done;
    }
    if (++challenges_ > max_challenges)
        return cancel(error::sasl_bad_challenge, out);
    if (pending_initial_) {
        // RFC 4422 §5: a client-first mechanism that held back its initial response sends it
        // now, in answer to an empty challenge.
        if (!r.lines.front().empty())
            return cancel(error::sasl_bad_challenge, out);
        format_auth_response(out, *pending_initial_);
        cleanse(*pending_initial_);
        pending_initial_.reset();
        return step::send;
    }
    auto challenge = mailroom::detail::base64_decode(r.lines.front());
    if (!challenge)
        return cancel(error::sasl_bad_challenge, out);
    auto response = client_->respond(*challenge);
    if (!response) {
        const error_code why = response.error();
        return cancel(why.category() == library_category() ? static_cast<error>(why.value())
                                                           : error::sasl_bad_challenge,
                      out);
    }
    format_auth_response(out, *response);
    cleanse(*response);
    return step::send;
}

} // namespace mailroom::smtp::detail

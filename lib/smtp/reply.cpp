// mailroom::smtp::reply, enhanced_status and the reply error category.
#include <mailroom/smtp/reply.hpp>
#include <mailroom/smtp/reply_error.hpp>

namespace mailroom::smtp {

std::string enhanced_status::to_string() const
{
    return std::to_string(cls) + '.' + std::to_string(subject) + '.' + std::to_string(detail);
}

std::optional<enhanced_status> enhanced_status::parse_prefix(std::string_view text) noexcept
{
    // RFC 3463 §2: status-code = class "." subject "." detail; class = "2"/"4"/"5";
    // subject = detail = 1*3digit, "without leading zero digits".
    std::size_t i = 0;
    auto number = [&](int& out) {
        const std::size_t start = i;
        int v = 0;
        while (i < text.size() && i - start < 4 && text[i] >= '0' && text[i] <= '9')
            v = v * 10 + (text[i++] - '0');
        const std::size_t n = i - start;
        if (n == 0 || n > 3 || (n > 1 && text[start] == '0'))
            return false;
        out = v;
        return true;
    };
    enhanced_status st;
    if (text.empty() || (text[0] != '2' && text[0] != '4' && text[0] != '5'))
        return std::nullopt;
    st.cls = text[0] - '0';
    i = 1;
    if (i >= text.size() || text[i++] != '.' || !number(st.subject))
        return std::nullopt;
    if (i >= text.size() || text[i++] != '.' || !number(st.detail))
        return std::nullopt;
    if (i < text.size() && text[i] != ' ')
        return std::nullopt;
    return st;
}

std::string reply::to_string() const
{
    std::string out;
    const std::string code_text = std::to_string(code);
    for (std::size_t i = 0; i < lines.size(); ++i) {
        if (i)
            out += '\n';
        out += code_text;
        out += i + 1 < lines.size() ? '-' : ' ';
        out += lines[i];
    }
    if (lines.empty())
        out = code_text;
    return out;
}

namespace {

class reply_category_impl final : public boost::system::error_category {
public:
    // A fixed id keeps categories equal across shared-library copies.
    constexpr reply_category_impl() noexcept
        : error_category(0x6d61696c726f6f70ULL)
    {
    }
    const char* name() const noexcept override { return "mailroom.smtp.reply"; }

    std::string message(int ev) const override { return std::to_string(ev) + ' ' + meaning(ev); }

    boost::system::error_condition default_error_condition(int ev) const noexcept override
    {
        // RFC 5321 §4.2.1: the first digit says whether a retry can succeed.
        switch (ev / 100) {
        case 4: return make_error_condition(condition::transient);
        case 5: return make_error_condition(condition::permanent);
        default: return {ev, *this};
        }
    }

private:
    // The meanings RFC 5321 §4.2.2/§4.2.3 and the extensions give; the server's own text goes
    // in diagnostics, never here.
    static const char* meaning(int ev) noexcept
    {
        switch (ev) {
        case 421: return "service not available, closing transmission channel";
        case 432: return "a password transition is needed";
        case 450: return "mailbox unavailable (busy or temporarily blocked)";
        case 451: return "local error in processing";
        case 452: return "insufficient system storage";
        case 454: return "temporary failure (TLS or authentication)";
        case 455: return "server unable to accommodate parameters";
        case 500: return "syntax error, command unrecognized";
        case 501: return "syntax error in parameters or arguments";
        case 502: return "command not implemented";
        case 503: return "bad sequence of commands";
        case 504: return "command parameter not implemented";
        case 521: return "host does not accept mail";
        case 530: return "authentication required";
        case 534: return "authentication mechanism is too weak";
        case 535: return "authentication credentials invalid";
        case 538: return "encryption required for requested authentication mechanism";
        case 550: return "mailbox unavailable";
        case 551: return "user not local";
        case 552: return "exceeded storage allocation";
        case 553: return "mailbox name not allowed";
        case 554: return "transaction failed";
        case 555: return "MAIL FROM/RCPT TO parameters not recognized or not implemented";
        case 556: return "domain does not accept mail";
        default: break;
        }
        switch (ev / 100) {
        case 2: return "positive completion reply";
        case 3: return "positive intermediate reply";
        case 4: return "transient negative completion reply";
        case 5: return "permanent negative completion reply";
        default: return "not an SMTP reply code";
        }
    }
};

constexpr reply_category_impl reply_instance;

} // namespace

const boost::system::error_category& reply_category() noexcept
{
    return reply_instance;
}

} // namespace mailroom::smtp

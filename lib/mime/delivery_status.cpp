// Delivery-status notifications (RFC 3464) in a multipart/report (RFC 6522), read into data.
//
// One pass per MIME nesting level, each level bounded by delivery_status_options::max_depth:
// header sections and the status part's field groups are read line by line once, multipart
// bodies are split by one scan for their boundary, so time and memory are linear in the input.

#include <mailroom/mime/delivery_status.hpp>

#include "detail/base64.hpp"

#include <algorithm>
#include <cctype>
#include <string>

namespace mailroom::mime {

std::string_view to_string(dsn_action a) noexcept
{
    switch (a) {
    case dsn_action::failed: return "failed";
    case dsn_action::delayed: return "delayed";
    case dsn_action::delivered: return "delivered";
    case dsn_action::relayed: return "relayed";
    case dsn_action::expanded: return "expanded";
    }
    return "unknown";
}

namespace {

char lower(char c)
{
    return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
}

bool iequals(std::string_view a, std::string_view b)
{
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                              [](char x, char y) { return lower(x) == lower(y); });
}

std::string to_lower(std::string_view s)
{
    std::string out(s);
    for (char& c : out)
        c = lower(c);
    return out;
}

bool is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

std::string_view trim(std::string_view s)
{
    while (!s.empty() && (is_wsp(s.front()) || s.front() == '\r' || s.front() == '\n'))
        s.remove_prefix(1);
    while (!s.empty() && (is_wsp(s.back()) || s.back() == '\r' || s.back() == '\n'))
        s.remove_suffix(1);
    return s;
}

// One line of `text` from `pos`: its content without the line break (CRLF or LF), and the
// position after the break.
struct line {
    std::string_view content;
    std::size_t next = 0;
    std::size_t break_len = 0; // 0 on a last line without a break
};

line line_at(std::string_view text, std::size_t pos)
{
    const std::size_t lf = text.find('\n', pos);
    if (lf == std::string_view::npos)
        return {text.substr(pos), text.size(), 0};
    std::size_t end = lf;
    std::size_t brk = 1;
    if (end > pos && text[end - 1] == '\r') {
        --end;
        brk = 2;
    }
    return {text.substr(pos, end - pos), lf + 1, brk};
}

// Reads one header section (or one group of DSN fields, RFC 3464 §2.1.1: the same syntax) from
// `pos` up to and including the empty line that ends it, or to the end of `text`. Calls
// `emit(name, value)` for each field, the value unfolded (RFC 5322 §2.2.3: the line breaks
// removed; the white space at each fold taken as one space) and trimmed. A line without a colon is
// not a field and is skipped. Stops early, returning false, when `emit` does.
template <class F> bool read_fields(std::string_view text, std::size_t& pos, F&& emit)
{
    std::string_view name;
    std::string value;
    bool have = false;
    auto flush = [&] {
        if (!have)
            return true;
        have = false;
        return emit(name, std::string(trim(value)));
    };
    while (pos < text.size()) {
        const line l = line_at(text, pos);
        pos = l.next;
        if (l.content.empty())
            break;
        if (is_wsp(l.content.front())) {
            // The fold's white space as one space: what a reader shows of a folded line.
            if (have) {
                value += ' ';
                value.append(trim(l.content));
            }
            continue;
        }
        if (!flush())
            return false;
        const std::size_t colon = l.content.find(':');
        if (colon == std::string_view::npos)
            continue;
        name = trim(l.content.substr(0, colon));
        if (name.empty())
            continue;
        value.assign(l.content.substr(colon + 1));
        have = true;
    }
    return flush();
}

// `s` without RFC 5322 comments (nested, outside quoted strings, with quoted-pairs), and the
// comments' text, joined by spaces, in `comments` when given.
std::string strip_comments(std::string_view s, std::string* comments = nullptr)
{
    std::string out;
    std::string comment;
    int depth = 0;
    bool quoted = false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if ((quoted || depth) && c == '\\' && i + 1 < s.size()) {
            (depth ? comment : out) += quoted ? std::string{c, s[i + 1]} : std::string{s[i + 1]};
            ++i;
            continue;
        }
        if (depth) {
            if (c == '(')
                ++depth;
            else if (c == ')' && --depth == 0) {
                if (comments) {
                    if (!comments->empty() && !trim(comment).empty())
                        *comments += ' ';
                    comments->append(trim(comment));
                }
                comment.clear();
                out += ' ';
                continue;
            }
            comment += c;
            continue;
        }
        if (quoted) {
            quoted = c != '"';
        } else if (c == '"') {
            quoted = true;
        } else if (c == '(') {
            depth = 1;
            continue;
        }
        out += c;
    }
    return std::string(trim(out));
}

// A Content-Type (RFC 2045 §5.1): type and subtype lower-cased, parameters by name.
struct media_type {
    std::string type = "text", subtype = "plain";
    std::vector<std::pair<std::string, std::string>> params;

    bool is(std::string_view t, std::string_view st) const { return type == t && subtype == st; }
    std::optional<std::string> param(std::string_view name) const
    {
        for (const auto& [n, v] : params)
            if (n == name)
                return v;
        return std::nullopt;
    }
};

media_type parse_media_type(std::string_view field)
{
    media_type m;
    const std::string v = strip_comments(field);
    // Split at ';' outside quoted strings.
    std::vector<std::string> pieces(1);
    bool quoted = false;
    for (std::size_t i = 0; i < v.size(); ++i) {
        const char c = v[i];
        if (quoted && c == '\\' && i + 1 < v.size()) {
            pieces.back() += v[++i];
            continue;
        }
        if (c == '"') {
            quoted = !quoted;
            pieces.back() += c;
        } else if (c == ';' && !quoted) {
            pieces.emplace_back();
        } else {
            pieces.back() += c;
        }
    }
    const std::string_view type = trim(pieces[0]);
    const std::size_t slash = type.find('/');
    if (slash != std::string_view::npos) {
        m.type = to_lower(trim(type.substr(0, slash)));
        m.subtype = to_lower(trim(type.substr(slash + 1)));
    }
    for (std::size_t i = 1; i < pieces.size(); ++i) {
        const std::string_view p = trim(pieces[i]);
        const std::size_t eq = p.find('=');
        if (eq == std::string_view::npos)
            continue;
        std::string_view value = trim(p.substr(eq + 1));
        if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
            value = value.substr(1, value.size() - 2);
        m.params.emplace_back(to_lower(trim(p.substr(0, eq))), std::string(value));
    }
    return m;
}

int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = lower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

// Quoted-printable (RFC 2045 §6.7), decoded leniently: a '=' not followed by two hex digits or
// a line break is kept as it is; white space at a line's end is dropped.
std::string qp_decode(std::string_view in)
{
    std::string out;
    out.reserve(in.size());
    std::size_t pos = 0;
    while (pos < in.size()) {
        const line l = line_at(in, pos);
        std::string_view s = l.content;
        while (!s.empty() && is_wsp(s.back()))
            s.remove_suffix(1);
        bool soft = false;
        for (std::size_t i = 0; i < s.size(); ++i) {
            if (s[i] != '=') {
                out += s[i];
            } else if (i + 1 == s.size()) {
                soft = true;
            } else if (i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
                out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
                i += 2;
            } else {
                out += '=';
            }
        }
        if (!soft && l.break_len)
            out += "\r\n";
        pos = l.next;
    }
    return out;
}

// Base64 in lines (RFC 2045 §6.8): the characters outside the alphabet are dropped, as §6.8
// asks of readers, and the rest must decode.
std::optional<std::string> base64_lines_decode(std::string_view in)
{
    std::string clean;
    clean.reserve(in.size());
    for (const char c : in)
        if (std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/' || c == '=')
            clean += c;
    return mailroom::detail::base64_decode(clean);
}

// xtext (RFC 3461 §4): "+XX" is the octet XX; anything else stands for itself.
std::string xtext_decode(std::string_view in)
{
    std::string out;
    for (std::size_t i = 0; i < in.size(); ++i) {
        if (in[i] == '+' && i + 2 < in.size() && hex_value(in[i + 1]) >= 0 &&
            hex_value(in[i + 2]) >= 0) {
            out += static_cast<char>(hex_value(in[i + 1]) * 16 + hex_value(in[i + 2]));
            i += 2;
        } else {
            out += in[i];
        }
    }
    return out;
}

// `type; value` (RFC 3464 §2.1.2). `address`: comments and the angle brackets around the
// address go; otherwise (diagnostic text) the value is kept as written.
typed_value parse_typed(std::string_view field, bool structured)
{
    typed_value t;
    const std::size_t semi = field.find(';');
    std::string_view value = field;
    if (semi != std::string_view::npos) {
        t.type = to_lower(strip_comments(field.substr(0, semi)));
        value = field.substr(semi + 1);
    }
    if (!structured) {
        t.value = std::string(trim(value));
        return t;
    }
    t.value = strip_comments(value);
    if (t.value.size() >= 2 && t.value.front() == '<' && t.value.back() == '>')
        t.value = std::string(trim(std::string_view(t.value).substr(1, t.value.size() - 2)));
    return t;
}

std::optional<dsn_action> parse_action(std::string_view field)
{
    const std::string v = to_lower(strip_comments(field));
    for (const dsn_action a : {dsn_action::failed, dsn_action::delayed, dsn_action::delivered,
                               dsn_action::relayed, dsn_action::expanded})
        if (v == to_string(a))
            return a;
    return std::nullopt;
}

// RFC 3463 §2: class "." subject "." detail; class 2, 4 or 5, subject and detail 1-3 digits.
std::optional<enhanced_status> parse_status(std::string_view field)
{
    std::string comments;
    const std::string v = strip_comments(field, &comments);
    const std::size_t sp = std::min(v.find_first_of(" \t"), v.size());
    const std::string_view code = std::string_view(v).substr(0, sp);
    unsigned parts[3] = {0, 0, 0};
    std::size_t n = 0, digits = 0;
    for (const char c : code) {
        if (c == '.') {
            if (digits == 0 || ++n > 2)
                return std::nullopt;
            digits = 0;
        } else if (c >= '0' && c <= '9' && digits < 3) {
            parts[n] = parts[n] * 10 + static_cast<unsigned>(c - '0');
            ++digits;
        } else {
            return std::nullopt;
        }
    }
    if (n != 2 || digits == 0 || (parts[0] != 2 && parts[0] != 4 && parts[0] != 5) ||
        code[1] != '.')
        return std::nullopt;
    enhanced_status s{parts[0], parts[1], parts[2], std::string(code), {}};
    std::string text(trim(std::string_view(v).substr(sp)));
    if (!text.empty() && !comments.empty())
        text += ' ';
    s.text = text + comments;
    return s;
}

class walker {
public:
    walker(delivery_status& r, diagnostics& d, const delivery_status_options& o)
        : report_(r)
        , diag_(d)
        , opts_(o)
    {
    }

    error_code run(std::string_view bytes)
    {
        if (bytes.size() > opts_.max_size) {
            too_large("message",
                      "larger than " + std::to_string(opts_.max_size) + " octets: read that far",
                      false);
            bytes = bytes.substr(0, opts_.max_size);
        }
        // An mbox separator line ("From sender date"), as a local delivery writes one.
        if (bytes.starts_with("From "))
            bytes.remove_prefix(line_at(bytes, 0).next);
        entity(bytes, 1, false, true);
        if (!status_found_) {
            if (!top_multipart_)
                problem("Content-Type", "not a multipart/report: " + top_type_);
            else
                problem("message", "no message/delivery-status part");
        } else {
            check_required();
        }
        report_.complete = !ec_;
        return ec_;
    }

private:
    void problem(std::string field, std::string detail)
    {
        if (ec_)
            return;
        ec_ = make_error_code(error::not_a_delivery_status);
        diag_ = {std::move(field), std::move(detail)};
    }
    // A bound passed: this error wins over a format problem found before it, since what
    // follows it was not read at all.
    // `stop`: nothing more is read (the input's size is the one bound that doesn't stop the
    // reading: what fits is read).
    void too_large(std::string field, std::string detail, bool stop = true)
    {
        stop_ = stop_ || stop;
        if (ec_ == error::delivery_status_too_large)
            return;
        ec_ = make_error_code(error::delivery_status_too_large);
        diag_ = {std::move(field), std::move(detail)};
    }

    void entity(std::string_view text, std::size_t depth, bool in_report, bool top = false)
    {
        if (stop_)
            return;
        if (depth > opts_.max_depth) {
            too_large("MIME", "nested deeper than " + std::to_string(opts_.max_depth) + " levels");
            return;
        }
        std::size_t pos = 0;
        std::optional<std::string> ctype, cte;
        read_fields(text, pos, [&](std::string_view name, std::string value) {
            if (iequals(name, "Content-Type") && !ctype)
                ctype = std::move(value);
            else if (iequals(name, "Content-Transfer-Encoding") && !cte)
                cte = to_lower(strip_comments(value));
            return true;
        });
        const std::string_view body = text.substr(pos);
        const media_type m = ctype ? parse_media_type(*ctype) : media_type{};
        if (top)
            top_type_ = m.type + "/" + m.subtype;
        if (m.type == "multipart") {
            const bool report = m.subtype == "report";
            if (report) {
                const auto rt = m.param("report-type");
                if (rt && !iequals(*rt, "delivery-status")) {
                    if (top)
                        problem("Content-Type", "a multipart/report of report-type " + *rt +
                                                    ", not delivery-status");
                    return;
                }
            }
            if (top)
                top_multipart_ = true;
            multipart(body, m, depth, report);
            return;
        }
        if (m.is("message", "delivery-status") || m.is("message", "global-delivery-status")) {
            if (status_found_)
                return; // RFC 6522 §3: one status part per report; a second one is not read
            status_found_ = true;
            if (top)
                top_multipart_ = true; // no second complaint about the top-level type
            if (!in_report)
                problem("MIME", m.type + "/" + m.subtype + " outside a multipart/report");
            report_.global = m.subtype == "global-delivery-status";
            if (auto decoded = decode(body, cte))
                status_body(*decoded);
            return;
        }
        const bool whole = m.is("message", "rfc822") || m.is("message", "global");
        const bool head = m.is("text", "rfc822-headers") || m.is("message", "global-headers");
        if ((whole || head) && in_report) {
            if (!report_.original)
                if (auto decoded = decode(body, cte))
                    returned(*decoded, head);
            return;
        }
        // A bounce forwarded as an attachment: look inside it.
        if (whole && !status_found_)
            entity(body, depth + 1, false);
    }

    // The part's body with its transfer encoding undone; nothing (and a problem) when it
    // can't be.
    std::optional<std::string> decode(std::string_view body, const std::optional<std::string>& cte)
    {
        if (!cte || *cte == "7bit" || *cte == "8bit" || *cte == "binary")
            return std::string(body);
        if (*cte == "quoted-printable")
            return qp_decode(body);
        if (*cte == "base64") {
            if (auto d = base64_lines_decode(body))
                return d;
            problem("Content-Transfer-Encoding", "the part's base64 can't be decoded");
            return std::nullopt;
        }
        problem("Content-Transfer-Encoding", "unknown transfer encoding '" + *cte + "'");
        return std::nullopt;
    }

    // RFC 2046 §5.1.1: the body parts between "--boundary" lines, the last one followed by
    // "--boundary--"; the preamble and the epilogue are not read. One scan of the lines.
    void multipart(std::string_view body, const media_type& m, std::size_t depth, bool report)
    {
        const auto boundary = m.param("boundary");
        if (!boundary || boundary->empty()) {
            problem("Content-Type", "multipart/" + m.subtype + " without a boundary");
            return;
        }
        const std::string dash = "--" + *boundary;
        std::optional<std::size_t> part_start;
        std::size_t pos = 0;
        std::size_t prev_break = 0; // the line break before the current line
        bool closed = false;
        while (pos < body.size() && !stop_) {
            const line l = line_at(body, pos);
            if (l.content.starts_with(dash)) {
                const std::string_view rest = l.content.substr(dash.size());
                const bool close = rest.starts_with("--");
                if (trim(close ? rest.substr(2) : rest).empty()) {
                    if (part_start) {
                        const std::size_t end = std::max(*part_start, pos - prev_break);
                        part(body.substr(*part_start, end - *part_start), depth, report);
                    }
                    if (close) {
                        closed = true;
                        break;
                    }
                    part_start = l.next;
                }
            }
            prev_break = l.break_len;
            pos = l.next;
        }
        if (stop_)
            return;
        if (!closed) {
            if (part_start && *part_start < body.size())
                part(body.substr(*part_start), depth, report);
            problem("MIME", part_start ? "multipart/" + m.subtype + " without its closing boundary"
                                       : "multipart/" + m.subtype + " without any boundary line");
        }
    }

    void part(std::string_view text, std::size_t depth, bool report)
    {
        if (++parts_ > opts_.max_parts) {
            too_large("MIME", "more than " + std::to_string(opts_.max_parts) + " body parts");
            return;
        }
        entity(text, depth + 1, report);
    }

    // RFC 3464 §2.1: the per-message fields, then a group of per-recipient fields for each
    // recipient, each group ended by an empty line.
    void status_body(std::string_view body)
    {
        std::size_t pos = 0;
        std::size_t fields = 0;
        while (pos < body.size() && !stop_) {
            const std::size_t before = pos;
            std::optional<dsn_recipient> r;
            std::vector<std::pair<std::string, std::string>> other;
            const bool ok = read_fields(body, pos, [&](std::string_view name, std::string value) {
                if (++fields > opts_.max_fields) {
                    too_large("message/delivery-status",
                              "more than " + std::to_string(opts_.max_fields) + " fields");
                    return false;
                }
                if (!message_field(name, value) && !recipient_field(r, name, value))
                    other.emplace_back(std::string(name), std::move(value));
                return true;
            });
            if (r) {
                if (report_.recipients.size() == opts_.max_recipients) {
                    too_large("message/delivery-status",
                              "more than " + std::to_string(opts_.max_recipients) + " recipients");
                    return;
                }
                r->other_fields = std::move(other);
                report_.recipients.push_back(std::move(*r));
            } else {
                for (auto& f : other)
                    report_.other_fields.push_back(std::move(f));
            }
            if (!ok || pos == before)
                return;
        }
    }

    // RFC 3464 §2.2: a per-message field, stored; false when `name` is not one.
    bool message_field(std::string_view name, const std::string& value)
    {
        if (iequals(name, "Reporting-MTA"))
            set_once(report_.reporting_mta, parse_typed(value, true));
        else if (iequals(name, "DSN-Gateway"))
            set_once(report_.dsn_gateway, parse_typed(value, true));
        else if (iequals(name, "Received-From-MTA"))
            set_once(report_.received_from_mta, parse_typed(value, true));
        else if (iequals(name, "Original-Envelope-Id"))
            set_once(report_.original_envelope_id, xtext_decode(strip_comments(value)));
        else if (iequals(name, "Arrival-Date"))
            set_once(report_.arrival_date, value);
        else
            return false;
        return true;
    }

    // RFC 3464 §2.3: a per-recipient field, stored in `r` (made on its first field); false
    // when `name` is not one.
    bool recipient_field(std::optional<dsn_recipient>& r, std::string_view name,
                         const std::string& value)
    {
        static constexpr std::string_view names[] = {
            "Original-Recipient",
            "Final-Recipient",
            "Action",
            "Status",
            "Remote-MTA",
            "Diagnostic-Code",
            "Last-Attempt-Date",
            "Will-Retry-Until",
            "Final-Log-ID",
        };
        const auto it = std::find_if(std::begin(names), std::end(names),
                                     [&](std::string_view n) { return iequals(n, name); });
        if (it == std::end(names))
            return false;
        if (!r)
            r.emplace();
        const std::string label =
            "recipient " + std::to_string(report_.recipients.size() + 1) + " " + std::string(*it);
        switch (it - std::begin(names)) {
        case 0: set_once(r->original_recipient, parse_typed(value, true)); break;
        case 1: set_once(r->final_recipient, parse_typed(value, true)); break;
        case 2:
            if (auto a = parse_action(value))
                set_once(r->action, *a);
            else
                problem(label, "not an RFC 3464 action: '" + value + "'");
            break;
        case 3:
            if (auto s = parse_status(value))
                set_once(r->status, std::move(*s));
            else
                problem(label, "not an RFC 3463 status code: '" + value + "'");
            break;
        case 4: set_once(r->remote_mta, parse_typed(value, true)); break;
        case 5: set_once(r->diagnostic_code, parse_typed(value, false)); break;
        case 6: set_once(r->last_attempt_date, value); break;
        case 7: set_once(r->will_retry_until, value); break;
        default: set_once(r->final_log_id, value); break;
        }
        return true;
    }

    // A field given twice keeps its first value.
    template <class T, class V> static void set_once(std::optional<T>& slot, V&& v)
    {
        if (!slot)
            slot = std::forward<V>(v);
    }

    void check_required()
    {
        if (!report_.reporting_mta)
            problem("Reporting-MTA", "missing (RFC 3464 §2.2.2)");
        if (report_.recipients.empty())
            problem("message/delivery-status", "no per-recipient fields");
        for (std::size_t i = 0; i < report_.recipients.size(); ++i) {
            const dsn_recipient& r = report_.recipients[i];
            const std::string label = "recipient " + std::to_string(i + 1) + " ";
            if (!r.final_recipient)
                problem(label + "Final-Recipient", "missing (RFC 3464 §2.3.2)");
            if (!r.action)
                problem(label + "Action", "missing (RFC 3464 §2.3.3)");
            if (!r.status)
                problem(label + "Status", "missing (RFC 3464 §2.3.4)");
        }
    }

    // The returned message's header section (RFC 6522 §3: message/rfc822 or
    // text/rfc822-headers; RFC 6533 §6.3, §6.4: message/global, message/global-headers).
    void returned(std::string_view text, bool headers_only)
    {
        returned_headers h;
        h.headers_only = headers_only;
        std::size_t pos = 0;
        read_fields(text, pos, [&](std::string_view name, std::string value) {
            if (iequals(name, "Message-ID"))
                set_once(h.message_id, std::move(value));
            else if (iequals(name, "Subject"))
                set_once(h.subject, std::move(value));
            else if (iequals(name, "From"))
                set_once(h.from, std::move(value));
            else if (iequals(name, "To"))
                set_once(h.to, std::move(value));
            else if (iequals(name, "Date"))
                set_once(h.date, std::move(value));
            return true;
        });
        report_.original = std::move(h);
    }

    delivery_status& report_;
    diagnostics& diag_;
    const delivery_status_options& opts_;
    error_code ec_;
    bool stop_ = false;
    bool status_found_ = false;
    bool top_multipart_ = false;
    std::string top_type_;
    std::size_t parts_ = 0;
};

} // namespace

error_code parse_delivery_status(std::string_view bytes, delivery_status& report, diagnostics& diag,
                                 const delivery_status_options& opts)
{
    report = {};
    diag.clear();
    return walker(report, diag, opts).run(bytes);
}

} // namespace mailroom::mime

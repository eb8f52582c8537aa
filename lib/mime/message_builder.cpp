// Message layout and validation (RFC 5322, RFC 2045-2049, RFC 2183, RFC 2231, RFC 2387).

#include <mailroom/mime/message_builder.hpp>

#include "encoding.hpp"
#include "header.hpp"
#include "message_data.hpp"
#include "random.hpp"
#include "recipient_list.hpp"

#include "detail/base64.hpp"
#include "detail/utf8.hpp"

#include <boost/system/system_error.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <ctime>

namespace mailroom::mime {

using mailroom::detail::base64_lines_append;
using mailroom::detail::has_control;
using mailroom::detail::is_printable_ascii;
using mailroom::detail::is_valid_utf8;
using mailroom::detail::utf8_seq_len;

// ---- setters --------------------------------------------------------------------------------

message_builder& message_builder::from(mailbox_input m)
{
    from_ = std::move(m);
    return *this;
}
message_builder& message_builder::sender(mailbox_input m)
{
    sender_ = std::move(m);
    return *this;
}
message_builder& message_builder::to(mailbox_input m)
{
    to_.push_back(std::move(m));
    return *this;
}
message_builder& message_builder::cc(mailbox_input m)
{
    cc_.push_back(std::move(m));
    return *this;
}
message_builder& message_builder::bcc(mailbox_input m)
{
    bcc_.push_back(std::move(m));
    return *this;
}
message_builder& message_builder::reply_to(mailbox_input m)
{
    reply_to_.push_back(std::move(m));
    return *this;
}
message_builder& message_builder::envelope_from(mailbox_input m)
{
    envelope_from_ = std::move(m);
    return *this;
}
message_builder& message_builder::subject(std::string text)
{
    subject_ = std::move(text);
    return *this;
}
message_builder& message_builder::date(std::chrono::system_clock::time_point t)
{
    date_ = t;
    return *this;
}
message_builder& message_builder::message_id(std::string id)
{
    message_id_ = std::move(id);
    return *this;
}
message_builder& message_builder::message_id_domain(std::string domain)
{
    message_id_domain_ = std::move(domain);
    return *this;
}
message_builder& message_builder::in_reply_to(std::string msg_id)
{
    in_reply_to_.push_back(std::move(msg_id));
    return *this;
}
message_builder& message_builder::references(std::string msg_id)
{
    references_.push_back(std::move(msg_id));
    return *this;
}
message_builder& message_builder::list_unsubscribe(std::string uri)
{
    list_unsubscribe_.push_back(std::move(uri));
    return *this;
}
message_builder& message_builder::list_unsubscribe_one_click(bool on)
{
    one_click_ = on;
    return *this;
}
message_builder& message_builder::header(std::string name, std::string value)
{
    headers_.emplace_back(std::move(name), std::move(value));
    return *this;
}
message_builder& message_builder::text(std::string body)
{
    text_ = detail::prepare_text(body);
    return *this;
}
message_builder& message_builder::html(std::string body)
{
    html_ = detail::prepare_text(body);
    return *this;
}
message_builder& message_builder::attach(attachment a)
{
    auto data = std::make_shared<const std::string>(std::move(a.data));
    a.data.clear();
    attachments_.push_back({std::move(a), std::move(data)});
    return *this;
}
message_builder& message_builder::attach_file(std::filesystem::path p, std::string content_type)
{
    attachment a;
    a.path = std::move(p);
    a.content_type = std::move(content_type);
    return attach(std::move(a));
}
message_builder& message_builder::inline_file(std::string content_id, std::filesystem::path p,
                                              std::string content_type)
{
    attachment a;
    a.path = std::move(p);
    a.content_type = std::move(content_type);
    a.content_id = std::move(content_id);
    return attach(std::move(a));
}
message_builder& message_builder::mode(transfer_mode m)
{
    mode_ = m;
    return *this;
}
message_builder& message_builder::max_recipients(std::size_t n)
{
    max_recipients_ = n;
    return *this;
}

message_builder& message_builder::dkim(dkim_signer signer)
{
    signers_.push_back(std::move(signer));
    return *this;
}

// ---- build ----------------------------------------------------------------------------------

namespace {

using namespace detail;

// The first failure stops the build; `field` names what the caller passed.
struct bad {
    error code;
    std::string field;
    std::string detail;
};

// Checks free text that goes into a header: UTF-8, no control characters at all.
std::optional<bad> check_text(std::string_view field, std::string_view v)
{
    if (!is_valid_utf8(v))
        return bad{error::invalid_utf8, std::string(field), "not valid UTF-8"};
    if (has_control(v))
        return bad{error::control_character, std::string(field),
                   "CR, LF, NUL or another control character is not allowed"};
    return std::nullopt;
}

std::optional<bad> resolve(std::string_view field, const message_builder::mailbox_input& in,
                           mailbox& out)
{
    if (const auto* text = std::get_if<std::string>(&in)) {
        diagnostics d;
        auto r = mailbox::parse(*text, d);
        if (!r) {
            error e = static_cast<error>(r.error().value());
            return bad{e, std::string(field), d.detail + " in '" + *text + "'"};
        }
        out = std::move(*r);
        return std::nullopt;
    }
    out = std::get<mailbox>(in);
    if (out.address().empty())
        return bad{error::invalid_address, std::string(field), "empty address"};
    return check_text(field, out.display_name());
}

// RFC 5322 §3.6.4 msg-id without obsolete forms: "<" dot-atom-text "@" (dot-atom-text |
// no-fold-literal) ">". Returns it with brackets, or empty when malformed.
std::string normalize_msg_id(std::string_view id)
{
    if (id.size() >= 2 && id.front() == '<' && id.back() == '>')
        id = id.substr(1, id.size() - 2);
    const std::size_t at = id.find('@');
    if (at == std::string_view::npos || at == 0 || at + 1 == id.size() || id.size() > 900)
        return {};
    auto dot_atom = [](std::string_view s) {
        if (s.empty() || s.front() == '.' || s.back() == '.' || s.find("..") != s.npos)
            return false;
        return std::all_of(s.begin(), s.end(), [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) ||
                   std::string_view("!#$%&'*+-/=?^_`{|}~.").find(c) != std::string_view::npos;
        });
    };
    std::string_view left = id.substr(0, at), right = id.substr(at + 1);
    const bool literal = right.size() >= 2 && right.front() == '[' && right.back() == ']' &&
                         is_printable_ascii(right) && right.find(' ') == right.npos &&
                         right.substr(1, right.size() - 2).find_first_of("[]\\") == right.npos;
    if (!dot_atom(left) || !(dot_atom(right) || literal))
        return {};
    return "<" + std::string(id) + ">";
}

bool is_token(std::string_view s)
{
    // RFC 2045 §5.1 token.
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
        return c > 0x20 && c < 0x7F &&
               std::string_view("()<>@,;:\\\"/[]?=").find(c) == std::string_view::npos;
    });
}

bool is_media_type(std::string_view s)
{
    const std::size_t slash = s.find('/');
    return slash != s.npos && is_token(s.substr(0, slash)) && is_token(s.substr(slash + 1));
}

bool is_reserved_header(std::string_view name)
{
    static constexpr std::string_view reserved[] = {"from",
                                                    "sender",
                                                    "to",
                                                    "cc",
                                                    "bcc",
                                                    "reply-to",
                                                    "subject",
                                                    "date",
                                                    "message-id",
                                                    "in-reply-to",
                                                    "references",
                                                    "mime-version",
                                                    "list-unsubscribe",
                                                    "list-unsubscribe-post",
                                                    "return-path"};
    std::string lower(name);
    for (auto& c : lower)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower.starts_with("content-"))
        return true;
    return std::find(std::begin(reserved), std::end(reserved), lower) != std::end(reserved);
}

std::string format_date(std::chrono::system_clock::time_point tp)
{
    // RFC 5322 §3.3, with the local zone's offset; day and month names are fixed English.
    static constexpr const char* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                             "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    const std::time_t t = std::chrono::system_clock::to_time_t(tp);
    std::tm tm{};
    localtime_r(&t, &tm);
    long off = tm.tm_gmtoff / 60;
    const char sign = off < 0 ? '-' : '+';
    if (off < 0)
        off = -off;
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d %c%02ld%02ld", days[tm.tm_wday],
                  tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                  tm.tm_sec, sign, off / 60, off % 60);
    return buf;
}

// ---- body tree --------------------------------------------------------------------------------

struct part {
    std::string headers; // this part's header fields, without the blank line
    // A leaf holds one of these:
    std::string body;                            // encoded text
    std::shared_ptr<const std::string> literal;  // or 7bit/8bit text, shared with the builder
    std::shared_ptr<const std::string> b64_data; // in-memory attachment
    std::filesystem::path b64_file;              // file attachment
    std::uint64_t file_size = 0;
    bool is_file = false;
    // A multipart holds these:
    std::string boundary;
    std::vector<part> children;
};

void add_header(std::string& h, std::string_view name, std::string_view value)
{
    h += name;
    h += ": ";
    h += value;
    h += "\r\n";
}

struct text_part_result {
    part p;
    bool eight_bit = false;
};

text_part_result make_text_part(std::string_view subtype,
                                std::shared_ptr<const prepared_text> prepared, transfer_mode m)
{
    text_part_result r;
    const text_stats& st = prepared->st;
    const std::string& crlf = prepared->crlf;
    // The part points into the prepared text (aliasing), which stays shared, never copied.
    auto literal = std::shared_ptr<const std::string>(prepared, &prepared->crlf);
    std::string_view cte;
    const bool short_lines = st.longest_line <= fold_width;
    if (st.controls == 0 && st.non_ascii == 0 && short_lines) {
        cte = "7bit";
        r.p.literal = std::move(literal);
    } else if (m == transfer_mode::eight_bit && st.controls == 0 && st.longest_line <= 998) {
        cte = st.non_ascii ? "8bit" : "7bit";
        r.eight_bit = st.non_ascii != 0;
        r.p.literal = std::move(literal);
    } else if ((st.non_ascii + st.controls) * 100 <= crlf.size() * 17) {
        // Quoted-printable costs 2 extra octets per encoded octet, base64 a third of all: below
        // about 17% of octets to encode, quoted-printable is smaller and stays readable.
        cte = "quoted-printable";
        quoted_printable_append(r.p.body, crlf);
    } else {
        cte = "base64";
        base64_lines_append(r.p.body, crlf);
        r.p.body += "\r\n";
    }
    std::string ct = "text/";
    ct += subtype;
    ct += "; charset=utf-8";
    add_header(r.p.headers, "Content-Type", ct);
    add_header(r.p.headers, "Content-Transfer-Encoding", cte);
    return r;
}

// `attr="value"`: a parameter value as a quoted-string (RFC 2045 §5.1).
std::string quoted_param(std::string_view attr, std::string_view value)
{
    return std::string(attr) + "=" + quoted_string(value);
}

// `name=` for Content-Type. A non-ASCII name goes as RFC 2047 words inside the quotes: not
// standard (RFC 2047 §5), but what Outlook and other readers that ignore RFC 2231 show.
void write_name_param(header_writer& h, std::string_view filename)
{
    h.glue(";");
    if (is_printable_ascii(filename)) {
        h.word(quoted_param("name", filename));
        return;
    }
    std::string words;
    encoded_words_joined(words, filename, max_encoded_word);
    std::replace(words.begin(), words.end(), '\n', ' ');
    h.word("name=\"" + words + "\"");
}

// `filename=` (RFC 2183) for a short ASCII name; otherwise RFC 2231 `filename*0*=utf-8''...`
// continuations, cut between characters so each section decodes on its own too, which keeps
// every line under fold_width.
void write_filename_param(header_writer& h, std::string_view filename)
{
    h.glue(";");
    if (is_printable_ascii(filename) && filename.size() < 60) {
        h.word(quoted_param("filename", filename));
        return;
    }
    constexpr std::size_t piece = 50;
    std::string section;
    int index = 0;
    auto flush = [&](bool last) {
        std::string w = "filename*" + std::to_string(index) + "*=";
        if (index == 0)
            w += "utf-8''";
        w += section;
        if (!last)
            w += ';';
        h.word(w);
        section.clear();
        ++index;
    };
    for (std::size_t pos = 0; pos < filename.size();) {
        std::size_t n = utf8_seq_len(static_cast<unsigned char>(filename[pos]));
        n = std::min(n, filename.size() - pos);
        std::string enc;
        rfc2231_append(enc, filename.substr(pos, n));
        if (!section.empty() && section.size() + enc.size() > piece)
            flush(false);
        section += enc;
        pos += n;
    }
    flush(true);
}

std::optional<bad> make_attachment_part(const attachment& a,
                                        std::shared_ptr<const std::string> data, part& p)
{
    std::string filename = a.filename;
    const std::string field = a.content_id.empty() ? "attachment" : "inline part " + a.content_id;
    if (filename.empty() && !a.path.empty())
        filename = a.path.filename().string();
    if (filename.empty() && a.content_id.empty())
        return bad{error::invalid_filename, field, "an attachment needs a file name"};
    if (auto b = check_text(field, filename))
        return b;
    // File systems cap names at 255 octets; the cap also keeps the encoded name= and filename*
    // parameters far below the 998-octet line limit.
    if (filename.size() > 255)
        return bad{error::invalid_filename, field, "file name longer than 255 octets"};
    if (filename.find_first_of("/\\") != filename.npos)
        return bad{error::invalid_filename, field,
                   "file name '" + filename + "' holds a path separator"};
    std::string type =
        a.content_type.empty() ? std::string(media_type_for(filename)) : a.content_type;
    for (auto& c : type)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (!is_media_type(type))
        return bad{error::invalid_content_type, field,
                   "'" + a.content_type + "' is not a type/subtype media type"};
    if (type.starts_with("multipart/") || type == "message/rfc822") {
        // These must not be base64 (RFC 2045 §6.4); send them as opaque data.
        type = "application/octet-stream";
    }

    if (!a.path.empty()) {
        struct stat st {};
        if (::stat(a.path.c_str(), &st) != 0 || !S_ISREG(st.st_mode) ||
            ::access(a.path.c_str(), R_OK) != 0)
            return bad{error::file_unreadable, field, "cannot read '" + a.path.string() + "'"};
        p.is_file = true;
        p.b64_file = a.path;
        p.file_size = static_cast<std::uint64_t>(st.st_size);
    } else {
        p.b64_data = std::move(data);
    }

    {
        header_writer h(p.headers, "Content-Type");
        h.word(type);
        if (!filename.empty())
            write_name_param(h, filename);
        h.finish();
    }
    {
        header_writer h(p.headers, "Content-Disposition");
        h.word(a.content_id.empty() ? "attachment" : "inline");
        if (!filename.empty())
            write_filename_param(h, filename);
        h.finish();
    }
    if (!a.content_id.empty()) {
        std::string cid = normalize_msg_id(a.content_id);
        if (cid.empty()) {
            // RFC 2392 wants msg-id form; bare ids such as "logo" are common and safe when they
            // are a dot-atom.
            const std::string_view id = a.content_id;
            const bool ok =
                !id.empty() && id.size() < 200 && std::all_of(id.begin(), id.end(), [](char c) {
                    return std::isalnum(static_cast<unsigned char>(c)) ||
                           std::string_view("!#$%&'*+-/=?^_`{|}~.").find(c) !=
                               std::string_view::npos;
                });
            if (!ok)
                return bad{error::invalid_content_id, field,
                           "Content-ID must be id@domain or a dot-atom"};
            cid = "<" + a.content_id + ">";
        }
        add_header(p.headers, "Content-ID", cid);
    }
    add_header(p.headers, "Content-Transfer-Encoding", "base64");
    return std::nullopt;
}

bool contains_boundary(const part& p, std::string_view boundary)
{
    if (p.literal && p.literal->find(boundary) != std::string::npos)
        return true;
    return std::any_of(p.children.begin(), p.children.end(),
                       [&](const part& c) { return contains_boundary(c, boundary); });
}

// Picks boundaries and writes multipart Content-Type headers, outermost first. A boundary
// starts with "=_", which quoted-printable and base64 never produce; literal 7bit/8bit text is
// searched, and the rare clash gets a new random boundary (RFC 2046 §5.1.1).
void finish_multipart(part& p, std::string_view subtype)
{
    while (contains_boundary(p, p.boundary))
        p.boundary = new_boundary();
    std::string ct = "multipart/";
    ct += subtype;
    ct += "; boundary=\"";
    ct += p.boundary;
    ct += '"';
    add_header(p.headers, "Content-Type", ct);
}

void emit(part& p, message_data& d)
{
    d.append_bytes(p.headers);
    d.append_bytes("\r\n");
    if (!p.children.empty()) {
        for (part& c : p.children) {
            d.append_bytes("--");
            d.append_bytes(p.boundary);
            d.append_bytes("\r\n");
            emit(c, d);
            d.append_bytes("\r\n");
        }
        d.append_bytes("--");
        d.append_bytes(p.boundary);
        d.append_bytes("--\r\n");
    } else if (p.is_file) {
        d.append_base64_file(p.b64_file, p.file_size);
    } else if (p.b64_data) {
        d.append_base64(p.b64_data);
    } else if (p.literal) {
        d.append_shared(std::move(p.literal));
    } else {
        d.append_shared(std::make_shared<const std::string>(std::move(p.body)));
    }
}

} // namespace

result<message> message_builder::build(diagnostics& diag) const
{
    diag.clear();
    auto fail = [&](bad b) -> result<message> {
        diag.field = std::move(b.field);
        diag.detail = std::move(b.detail);
        return make_error_code(b.code);
    };

    auto d = std::make_shared<message_data>();
    envelope& env = d->env;

    // Addresses.
    if (!from_)
        return fail({error::missing_from, "From", "a message needs a From address"});
    mailbox from;
    if (auto b = resolve("From", *from_, from))
        return fail(std::move(*b));
    std::optional<mailbox> sender;
    if (sender_) {
        sender.emplace();
        if (auto b = resolve("Sender", *sender_, *sender))
            return fail(std::move(*b));
    }
    auto resolve_list = [&](std::string_view field, const std::vector<mailbox_input>& in,
                            std::vector<mailbox>& out) -> std::optional<bad> {
        out.resize(in.size());
        for (std::size_t i = 0; i < in.size(); ++i)
            if (auto b = resolve(field, in[i], out[i]))
                return b;
        return std::nullopt;
    };
    std::vector<mailbox> to, cc, bcc, reply_to;
    if (auto b = resolve_list("To", to_, to))
        return fail(std::move(*b));
    if (auto b = resolve_list("Cc", cc_, cc))
        return fail(std::move(*b));
    if (auto b = resolve_list("Bcc", bcc_, bcc))
        return fail(std::move(*b));
    if (auto b = resolve_list("Reply-To", reply_to_, reply_to))
        return fail(std::move(*b));
    if (to.empty() && cc.empty() && bcc.empty())
        return fail({error::no_recipients, "To", "a message needs a To, Cc or Bcc recipient"});

    if (envelope_from_) {
        mailbox ef;
        if (auto b = resolve("envelope from", *envelope_from_, ef))
            return fail(std::move(*b));
        env.from = ef.address();
    } else {
        env.from = sender ? sender->address() : from.address();
    }
    {
        // Each recipient once, found by hashing: linear in the list, however long.
        recipient_list rcpts(max_recipients_);
        for (const auto* list : {&to, &cc, &bcc})
            for (const mailbox& m : *list)
                if (rcpts.add(m.address()) == recipient_list::outcome::too_many)
                    return fail({error::too_many_recipients, "recipients",
                                 "more than " + std::to_string(max_recipients_) +
                                     " distinct recipients, the cap"});
        env.recipients = std::move(rcpts).take();
    }
    auto utf8 = [](const mailbox& m) {
        return m.address().needs_smtputf8();
    };
    env.smtputf8 = utf8(from) || (sender && utf8(*sender)) || env.from.needs_smtputf8() ||
                   std::any_of(to.begin(), to.end(), utf8) ||
                   std::any_of(cc.begin(), cc.end(), utf8) ||
                   std::any_of(bcc.begin(), bcc.end(), utf8) ||
                   std::any_of(reply_to.begin(), reply_to.end(), utf8);

    // Free-text and identifier fields.
    if (subject_)
        if (auto b = check_text("Subject", *subject_))
            return fail(std::move(*b));
    if (!message_id_.empty()) {
        d->message_id = normalize_msg_id(message_id_);
        if (d->message_id.empty())
            return fail({error::invalid_message_id, "Message-ID",
                         "'" + message_id_ + "' is not <left@right>"});
    } else {
        std::string domain = from.address().domain_ascii();
        if (!message_id_domain_.empty()) {
            diagnostics dd;
            auto a = address::parse("x@" + message_id_domain_, dd);
            if (!a)
                return fail({error::invalid_domain, "Message-ID domain", dd.detail});
            domain = a->domain_ascii();
        }
        d->message_id = "<" + random_token() + "@" + domain + ">";
    }
    std::vector<std::string> in_reply_to, references;
    for (auto [field, src, dst] : {std::tuple{"In-Reply-To", &in_reply_to_, &in_reply_to},
                                   std::tuple{"References", &references_, &references}}) {
        for (const std::string& id : *src) {
            std::string n = normalize_msg_id(id);
            if (n.empty())
                return fail({error::invalid_message_id, field, "'" + id + "' is not <left@right>"});
            dst->push_back(std::move(n));
        }
    }
    bool have_https = false;
    for (const std::string& uri : list_unsubscribe_) {
        const bool ok = !uri.empty() && uri.size() < 900 && is_printable_ascii(uri) &&
                        uri.find_first_of(" <>\"") == uri.npos && uri.find(':') != uri.npos;
        if (!ok)
            return fail({error::invalid_uri, "List-Unsubscribe",
                         "a URI without spaces, quotes or angle brackets is needed"});
        have_https |= uri.starts_with("https://");
    }
    if (one_click_ && !have_https)
        return fail({error::invalid_uri, "List-Unsubscribe-Post",
                     "one-click unsubscribe needs an https List-Unsubscribe URI (RFC 8058 §3.1)"});
    for (const auto& [name, value] : headers_) {
        const bool name_ok = !name.empty() && name.size() <= 76 &&
                             std::all_of(name.begin(), name.end(),
                                         [](char c) { return c > 0x20 && c < 0x7F && c != ':'; });
        if (!name_ok)
            return fail({error::invalid_header_name, "header",
                         "a header name is 1-76 printable ASCII characters without ':'"});
        if (is_reserved_header(name))
            return fail({error::reserved_header, name,
                         "this header is set by the message builder; use its own option"});
        if (auto b = check_text(name, value))
            return fail(std::move(*b));
    }
    for (auto [field, body] : {std::pair{"text", &text_}, std::pair{"html", &html_}})
        if (*body && !(*body)->valid_utf8)
            return fail({error::invalid_utf8, field, "body is not valid UTF-8"});

    // Body tree: mixed(alternative(text, related(html, inline...)), attachment...).
    std::vector<part> inlines, files;
    for (const stored_attachment& a : attachments_) {
        part p;
        if (auto b = make_attachment_part(a.meta, a.data, p))
            return fail(std::move(*b));
        (a.meta.content_id.empty() ? files : inlines).push_back(std::move(p));
    }
    std::optional<part> text_part, html_part;
    if (text_ || (!html_)) {
        static const auto no_text = prepare_text({});
        auto r = make_text_part("plain", text_ ? text_ : no_text, mode_);
        env.eight_bit |= r.eight_bit;
        text_part = std::move(r.p);
    }
    if (html_) {
        auto r = make_text_part("html", html_, mode_);
        env.eight_bit |= r.eight_bit;
        html_part = std::move(r.p);
    }
    auto multipart = [](std::string_view subtype, std::vector<part> children) {
        part p;
        p.children = std::move(children);
        p.boundary = new_boundary();
        finish_multipart(p, subtype);
        return p;
    };
    // The part inline images belong to: the HTML when there is one, else the text.
    std::optional<part>& root = html_part ? html_part : text_part;
    if (!inlines.empty()) {
        std::vector<part> kids;
        kids.push_back(std::move(*root));
        for (part& p : inlines)
            kids.push_back(std::move(p));
        root = multipart("related", std::move(kids));
    }
    part body;
    if (text_part && html_part) {
        std::vector<part> kids;
        kids.push_back(std::move(*text_part));
        kids.push_back(std::move(*html_part));
        body = multipart("alternative", std::move(kids));
    } else {
        body = std::move(text_part ? *text_part : *html_part);
    }
    if (!files.empty()) {
        std::vector<part> kids;
        kids.push_back(std::move(body));
        for (part& p : files)
            kids.push_back(std::move(p));
        body = multipart("mixed", std::move(kids));
    }

    // Top-level header fields, in the order RFC 5322 §3.6 lists them.
    std::string h;
    h.reserve(1024);
    add_header(h, "Date", format_date(date_.value_or(std::chrono::system_clock::now())));
    write_mailbox_header(h, "From", std::span(&from, 1));
    if (sender)
        write_mailbox_header(h, "Sender", std::span(&*sender, 1));
    if (!reply_to.empty())
        write_mailbox_header(h, "Reply-To", reply_to);
    if (!to.empty())
        write_mailbox_header(h, "To", to);
    if (!cc.empty())
        write_mailbox_header(h, "Cc", cc);
    if (subject_) {
        header_writer w(h, "Subject");
        write_unstructured(w, *subject_);
        w.finish();
    }
    add_header(h, "Message-ID", d->message_id);
    for (auto [name, ids] :
         {std::pair{"In-Reply-To", &in_reply_to}, std::pair{"References", &references}}) {
        if (ids->empty())
            continue;
        header_writer w(h, name);
        for (const std::string& id : *ids)
            w.word(id);
        w.finish();
    }
    if (!list_unsubscribe_.empty()) {
        header_writer w(h, "List-Unsubscribe");
        for (std::size_t i = 0; i < list_unsubscribe_.size(); ++i) {
            w.word("<" + list_unsubscribe_[i] + ">");
            if (i + 1 < list_unsubscribe_.size())
                w.glue(",");
        }
        w.finish();
        if (one_click_)
            add_header(h, "List-Unsubscribe-Post", "List-Unsubscribe=One-Click");
    }
    for (const auto& [name, value] : headers_) {
        header_writer w(h, name);
        write_unstructured(w, value);
        w.finish();
    }
    add_header(h, "MIME-Version", "1.0");
    d->append_bytes(h);
    emit(body, *d);
    message m(std::move(d));
    if (signers_.empty())
        return m;
    return dkim_sign(m, signers_, std::chrono::system_clock::now(), diag);
}

message message_builder::build_or_throw() const
{
    diagnostics diag;
    auto r = build(diag);
    if (!r)
        throw boost::system::system_error(r.error(), diag.to_string());
    return std::move(*r);
}

} // namespace mailroom::mime

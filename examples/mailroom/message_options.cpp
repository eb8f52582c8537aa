#include "cli.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <iterator>

#include <sys/stat.h>
#include <unistd.h>

namespace mailroom::cli {

std::string_view arg_reader::next_flag()
{
    has_inline_ = false;
    if (pos_ >= args_.size())
        return {};
    std::string_view a = args_[pos_++];
    if (!a.starts_with("-") || a == "-")
        throw failure(ex_usage, "unexpected argument '" + std::string(a) + "'");
    if (a.starts_with("--")) {
        if (auto eq = a.find('='); eq != std::string_view::npos) {
            inline_value_ = std::string(a.substr(eq + 1));
            has_inline_ = true;
            a = a.substr(0, eq);
        }
    }
    flag_ = a;
    return a;
}

std::string arg_reader::value()
{
    if (has_inline_) {
        has_inline_ = false;
        return inline_value_;
    }
    if (pos_ >= args_.size())
        throw failure(ex_usage, std::string(flag_) + " needs a value");
    return args_[pos_++];
}

namespace {

std::string stdin_flag; // the option reading standard input, if one does

// The words of at least three letters or digits in `s`, lower-cased.
std::vector<std::string> words_of(std::string_view s)
{
    std::vector<std::string> out;
    std::string w;
    for (std::size_t i = 0; i <= s.size(); ++i) {
        const auto c = i < s.size() ? static_cast<unsigned char>(s[i]) : ' ';
        if (std::isalnum(c)) {
            w += static_cast<char>(std::tolower(c));
            continue;
        }
        if (w.size() >= 3)
            out.push_back(w);
        w.clear();
    }
    return out;
}

// Whether at least two thirds of a's words are also in b.
bool mostly_in(const std::vector<std::string>& a, const std::vector<std::string>& b)
{
    if (a.empty())
        return false;
    std::size_t found = 0;
    for (const auto& w : a)
        found += std::find(b.begin(), b.end(), w) != b.end();
    return 3 * found >= 2 * a.size();
}

} // namespace

void claim_stdin(const std::string& flag)
{
    if (!stdin_flag.empty() && stdin_flag != flag)
        throw failure(ex_usage, flag + ": standard input is already read by " + stdin_flag +
                                    " (only one option can be '-')");
    stdin_flag = flag;
}

bool stdin_claimed()
{
    return !stdin_flag.empty();
}

std::string error_text(error_code ec, const std::string& detail)
{
    const std::string message = ec.message();
    if (detail.empty())
        return message;
    // Where both say the same thing, one is enough: the detail, which is the more precise,
    // unless it says nothing the message doesn't.
    const auto m = words_of(message), d = words_of(detail);
    if (std::all_of(d.begin(), d.end(), [&](const std::string& w) {
            return std::find(m.begin(), m.end(), w) != m.end();
        }))
        return message;
    if (mostly_in(m, d) || mostly_in(d, m))
        return detail;
    return message + ": " + detail;
}

std::string read_file_or_fail(const std::string& flag, const std::string& path)
{
    if (path == "-") {
        claim_stdin(flag);
        std::string data;
        char buf[65536];
        std::size_t n = 0;
        while ((n = std::fread(buf, 1, sizeof buf, stdin)) > 0)
            data.append(buf, n);
        if (std::ferror(stdin))
            throw failure(ex_noinput, flag + ": cannot read standard input");
        return data;
    }
    std::ifstream in(path, std::ios::binary);
    std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in && !in.eof())
        throw failure(ex_noinput, flag + ": cannot read '" + path + "'");
    if (in.bad() || (!in.is_open()))
        throw failure(ex_noinput, flag + ": cannot read '" + path + "'");
    return data;
}

namespace {

mailbox parse_mailbox_or_fail(std::string_view flag, const std::string& text)
{
    diagnostics d;
    auto r = mailbox::parse(text, d);
    if (!r)
        throw failure(ex_dataerr, std::string(flag) + ": " +
                                      error_text(r.error(), d.detail + " in '" + text + "'"));
    return std::move(*r);
}

} // namespace

bool message_options::take(std::string_view flag, arg_reader& args)
{
    if (flag == "--from") {
        from_ = parse_mailbox_or_fail(flag, args.value());
        builder_.from(*from_);
        have_from_ = true;
    } else if (flag == "--to" || flag == "--cc" || flag == "--bcc") {
        mailbox m = parse_mailbox_or_fail(flag, args.value());
        rcpts_.push_back(m);
        if (flag == "--to")
            builder_.to(std::move(m));
        else if (flag == "--cc")
            builder_.cc(std::move(m));
        else
            builder_.bcc(std::move(m));
        have_rcpt_ = true;
    } else if (!take_content(flag, args)) {
        return false;
    }
    return true;
}

bool message_options::take_content(std::string_view flag, arg_reader& args)
{
    if (flag == "--reply-to") {
        builder_.reply_to(parse_mailbox_or_fail(flag, args.value()));
    } else if (flag == "--subject") {
        builder_.subject(args.value());
    } else if (flag == "--text" || flag == "--text-file") {
        if (have_text_)
            throw failure(ex_usage, "give --text or --text-file once");
        std::string v = args.value();
        builder_.text(flag == "--text" ? v : read_file_or_fail(std::string(flag), v));
        have_text_ = true;
    } else if (flag == "--html" || flag == "--html-file") {
        if (have_html_)
            throw failure(ex_usage, "give --html or --html-file once");
        std::string v = args.value();
        builder_.html(flag == "--html" ? v : read_file_or_fail(std::string(flag), v));
        have_html_ = true;
    } else if (flag == "--attach") {
        builder_.attach_file(args.value());
    } else if (flag == "--inline") {
        std::string v = args.value();
        const auto eq = v.find('=');
        if (eq == std::string::npos || eq == 0 || eq + 1 == v.size())
            throw failure(ex_usage, "--inline takes CID=FILE");
        builder_.inline_file(v.substr(0, eq), v.substr(eq + 1));
    } else if (flag == "--header") {
        std::string v = args.value();
        const auto colon = v.find(':');
        if (colon == std::string::npos)
            throw failure(ex_dataerr, "--header: expected 'Name: value', got '" + v + "'");
        std::string value = v.substr(colon + 1);
        value.erase(0, value.find_first_not_of(' '));
        header_names_.push_back(v.substr(0, colon));
        builder_.header(v.substr(0, colon), std::move(value));
    } else {
        return false;
    }
    have_content_ = true;
    return true;
}

mime::message message_options::build_from_eml(const std::string& path) const
{
    if (have_content_)
        throw failure(ex_usage, "--eml can't be combined with options that shape the message "
                                "(only --from, --to, --cc, --bcc, which set the envelope)");
    diagnostics d;
    // A file is read as it is sent, never whole. So is standard input where it is a file
    // read from its start (`--eml - < FILE`); a pipe can only be read once, and is read whole.
    struct stat st {};
    const bool stdin_file = path == "-" && ::fstat(STDIN_FILENO, &st) == 0 && S_ISREG(st.st_mode) &&
                            ::lseek(STDIN_FILENO, 0, SEEK_CUR) == 0;
    auto m = stdin_file    ? mime::message::from_wire_file("/dev/stdin", d)
             : path == "-" ? mime::message::from_wire(read_file_or_fail("--eml", path), d)
                           : mime::message::from_wire_file(path, d);
    if (!m && m.error() == error::file_unreadable)
        throw failure(ex_noinput, "--eml: cannot read '" + path + "'");
    if (!m)
        throw failure(ex_dataerr, "--eml: " + error_text(m.error(), d.to_string()));
    if (!have_from_ && !have_rcpt_)
        return std::move(*m);
    envelope env = m->envelope();
    if (have_from_)
        env.from = from_->address();
    if (have_rcpt_) {
        env.recipients.clear();
        for (const mailbox& r : rcpts_)
            env.recipients.push_back(r.address());
    }
    env.smtputf8 = env.from.needs_smtputf8() || m->envelope().smtputf8;
    for (const address& a : env.recipients)
        env.smtputf8 |= a.needs_smtputf8();
    return m->with_envelope(std::move(env));
}

namespace {

// The option that sets a header --header may not give, for the error that refuses it.
std::string own_option_for(std::string_view header)
{
    std::string lower(header);
    for (auto& c : lower)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    static constexpr std::string_view with_option[] = {"from", "to",       "cc",
                                                       "bcc",  "reply-to", "subject"};
    if (std::find(std::begin(with_option), std::end(with_option), lower) != std::end(with_option))
        return "; use --" + lower;
    if (lower.starts_with("content-"))
        return "; it comes from the body and attachments";
    return "";
}

} // namespace

mime::message message_options::build() const
{
    if (!have_from_)
        throw failure(ex_usage, "--from is required");
    if (!have_rcpt_)
        throw failure(ex_usage, "at least one --to, --cc or --bcc is required");
    diagnostics d;
    auto r = builder_.build(d);
    if (!r) {
        const int status = r.error() == error::file_unreadable ? ex_noinput : ex_dataerr;
        const std::string& field = d.field;
        // A header --header gave is that option's mistake, not the option whose field it names
        // (`--header 'From: x'` is not --from's). Only the body checks, after the headers', say
        // "text" or "html" of invalid UTF-8.
        if (r.error() == error::reserved_header)
            throw failure(status,
                          "--header " + field + ": " + r.error().message() + own_option_for(field));
        const bool from_header =
            std::find(header_names_.begin(), header_names_.end(), field) != header_names_.end() &&
            !((field == "text" || field == "html") && r.error() == error::invalid_utf8);
        // Name the option the user typed where one field maps to one option.
        std::string prefix;
        static constexpr std::string_view own_option[] = {"Subject", "text", "html",    "From",
                                                          "To",      "Cc",   "Reply-To"};
        if (field == "header" && r.error() == error::invalid_header_name) {
            prefix = "--header: ";
        } else if (!from_header && std::find(std::begin(own_option), std::end(own_option), field) !=
                                       std::end(own_option)) {
            prefix = "--" + field + ": ";
            for (auto& c : prefix)
                c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        } else if (!field.empty() && field != "attachment" && !field.starts_with("inline")) {
            prefix = "--header " + field + ": ";
        } else if (!field.empty()) {
            prefix = field + ": ";
        }
        throw failure(status, prefix + error_text(r.error(), d.detail));
    }
    return std::move(*r);
}

const char* message_options::usage()
{
    return "  --from ADDR            From mailbox, e.g. 'Alice <alice@example.com>'\n"
           "  --to ADDR              a To recipient (repeat for more; one mailbox each)\n"
           "  --cc ADDR / --bcc ADDR Cc / Bcc recipient (Bcc goes in the envelope only)\n"
           "  --reply-to ADDR        Reply-To mailbox\n"
           "  --subject TEXT         Subject (UTF-8)\n"
           "  --text TEXT | --text-file FILE   text/plain body (FILE '-': standard input)\n"
           "  --html TEXT | --html-file FILE   text/html body (FILE '-': standard input)\n"
           "  --attach FILE          attach a file (repeatable)\n"
           "  --inline CID=FILE      inline part for <img src=\"cid:CID\"> (repeatable)\n"
           "  --header 'Name: value' extra header field (repeatable)\n";
}

} // namespace mailroom::cli

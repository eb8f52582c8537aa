#include "cli.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <fcntl.h>
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

std::uint64_t max_input = 64ull << 20;

std::string too_big(const std::string& flag, const std::string& what)
{
    return flag + ": " + what + " is larger than " + std::to_string(max_input) +
           " octets (--max-size)";
}

const char* kind_of(mode_t m)
{
    if (S_ISDIR(m))
        return "a directory";
    if (S_ISFIFO(m))
        return "a FIFO";
    if (S_ISCHR(m))
        return "a character device";
    if (S_ISBLK(m))
        return "a block device";
    if (S_ISSOCK(m))
        return "a socket";
    return "not a regular file";
}

// Closes a descriptor when it goes out of scope.
struct fd_closer {
    int fd;
    ~fd_closer()
    {
        if (fd >= 0)
            ::close(fd);
    }
};

// Opens `path` for reading, refusing anything but a regular file within max_input by stat.
// O_NONBLOCK for the open alone: opening a FIFO would otherwise wait for a writer. -1 when it
// can't be opened at all (errno says why).
int open_regular(const std::string& flag, const std::string& path, struct stat& st)
{
    const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -1;
    fd_closer guard{fd};
    if (::fstat(fd, &st) != 0)
        throw failure(ex_noinput, flag + ": cannot read '" + path + "'");
    if (!S_ISREG(st.st_mode))
        throw failure(ex_noinput,
                      flag + ": '" + path + "' is " + kind_of(st.st_mode) + ", not a regular file");
    if (static_cast<std::uint64_t>(st.st_size) > max_input)
        throw failure(ex_dataerr, too_big(flag, "'" + path + "'"));
    const int fl = ::fcntl(fd, F_GETFL);
    if (fl < 0 || ::fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0)
        throw failure(ex_noinput, flag + ": cannot read '" + path + "'");
    guard.fd = -1;
    return fd;
}

// Reads to the end of file, whatever stat said of its size; at most max_input octets.
std::string read_to_end(int fd, const std::string& flag, const std::string& what)
{
    std::string data;
    char buf[65536];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            throw failure(ex_noinput, flag + ": cannot read " + what);
        if (n == 0)
            return data;
        if (data.size() + static_cast<std::size_t>(n) > max_input)
            throw failure(ex_dataerr, too_big(flag, what));
        data.append(buf, static_cast<std::size_t>(n));
    }
}

} // namespace

std::uint64_t max_input_size()
{
    return max_input;
}

void set_max_input_size(std::uint64_t octets)
{
    max_input = octets;
}

std::uint64_t parse_size(const std::string& flag, const std::string& v)
{
    std::size_t digits = 0;
    while (digits < v.size() && std::isdigit(static_cast<unsigned char>(v[digits])))
        ++digits;
    const std::string unit = v.substr(digits);
    unsigned shift = 0;
    if (unit == "K" || unit == "k")
        shift = 10;
    else if (unit == "M" || unit == "m")
        shift = 20;
    else if (unit == "G" || unit == "g")
        shift = 30;
    else if (!unit.empty())
        digits = 0;
    errno = 0;
    const unsigned long long n =
        digits > 0 && digits <= 15 ? std::strtoull(v.substr(0, digits).c_str(), nullptr, 10) : 0;
    if (n == 0 || errno || n > (1ull << 40) >> shift)
        throw failure(ex_usage, flag +
                                    ": expected a size in octets from 1 to 1T, with an "
                                    "optional K, M or G suffix, got '" +
                                    v + "'");
    return n << shift;
}

std::string read_input_file(const std::string& flag, const std::string& path)
{
    if (path == "-") {
        claim_stdin(flag);
        return read_to_end(STDIN_FILENO, flag, "standard input");
    }
    struct stat st {};
    const int fd = open_regular(flag, path, st);
    if (fd < 0)
        throw failure(ex_noinput, flag + ": cannot read '" + path + "'");
    fd_closer guard{fd};
    return read_to_end(fd, flag, "'" + path + "'");
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
    } else if (flag == "--max-size") {
        set_max_input_size(parse_size("--max-size", args.value()));
    } else if (!take_content(flag, args)) {
        return false;
    }
    return true;
}

void message_options::take_file(std::string_view flag, std::string path)
{
    if (path == "-")
        claim_stdin(std::string(flag));
    files_.push_back({std::string(flag), std::move(path), {}});
}

void message_options::add_file(mime::message_builder& b, const input_file& f) const
{
    if (f.flag == "--text-file") {
        b.text(read_input_file(f.flag, f.path));
        return;
    }
    if (f.flag == "--html-file") {
        b.html(read_input_file(f.flag, f.path));
        return;
    }
    // Attachments are read by the library as the message is written; its size is taken from
    // stat at build(). So: refuse what is not a regular file or too big now, and read a file
    // whose stat size is 0 (as /proc's are) here, to its end. A file that can't be opened
    // is left to the library, which says so as it always has.
    struct stat st {};
    const int fd = open_regular(f.flag, f.path, st);
    if (fd < 0) {
        if (f.flag == "--attach")
            b.attach_file(f.path);
        else
            b.inline_file(f.content_id, f.path);
        return;
    }
    fd_closer guard{fd};
    if (st.st_size > 0) {
        if (f.flag == "--attach")
            b.attach_file(f.path);
        else
            b.inline_file(f.content_id, f.path);
        return;
    }
    mime::attachment a;
    a.filename = std::filesystem::path(f.path).filename().string();
    a.data = read_to_end(fd, f.flag, "'" + f.path + "'");
    a.content_id = f.content_id;
    b.attach(std::move(a));
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
        if (flag == "--text")
            builder_.text(std::move(v));
        else
            take_file(flag, std::move(v));
        have_text_ = true;
    } else if (flag == "--html" || flag == "--html-file") {
        if (have_html_)
            throw failure(ex_usage, "give --html or --html-file once");
        std::string v = args.value();
        if (flag == "--html")
            builder_.html(std::move(v));
        else
            take_file(flag, std::move(v));
        have_html_ = true;
    } else if (flag == "--attach") {
        files_.push_back({"--attach", args.value(), {}});
    } else if (flag == "--inline") {
        std::string v = args.value();
        const auto eq = v.find('=');
        if (eq == std::string::npos || eq == 0 || eq + 1 == v.size())
            throw failure(ex_usage, "--inline takes CID=FILE");
        files_.push_back({"--inline", v.substr(eq + 1), v.substr(0, eq)});
    } else if (flag == "--header") {
        std::string v = args.value();
        const auto colon = v.find(':');
        if (colon == std::string::npos)
            throw failure(ex_dataerr, "--header: expected 'Name: value', got '" + v + "'");
        std::string value = v.substr(colon + 1);
        value.erase(0, value.find_first_not_of(' '));
        header_names_.push_back(v.substr(0, colon));
        builder_.header(v.substr(0, colon), std::move(value));
    } else if (flag == "--list-unsubscribe") {
        builder_.list_unsubscribe(args.value());
    } else if (flag == "--list-unsubscribe-one-click") {
        builder_.list_unsubscribe_one_click();
    } else if (flag == "--8bit") {
        builder_.mode(mime::transfer_mode::eight_bit);
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
    if (stdin_file && static_cast<std::uint64_t>(st.st_size) > max_input)
        throw failure(ex_dataerr, too_big("--eml", "standard input"));
    // A file: a regular one, within --max-size. One whose stat size is 0 (as /proc's are) may
    // still hold something: it is read here, to its end, rather than trusted to be empty.
    std::optional<std::string> whole;
    if (path == "-" && !stdin_file) {
        whole = read_input_file("--eml", path);
    } else if (path != "-") {
        struct stat fst {};
        const int fd = open_regular("--eml", path, fst);
        if (fd < 0)
            throw failure(ex_noinput, "--eml: cannot read '" + path + "'");
        fd_closer guard{fd};
        if (fst.st_size == 0)
            whole = read_to_end(fd, "--eml", "'" + path + "'");
    }
    auto m = whole        ? mime::message::from_wire(*whole, d)
             : stdin_file ? mime::message::from_wire_file("/dev/stdin", d)
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

mime::message message_options::build(std::span<const mime::dkim_signer> signers) const
{
    if (!have_from_)
        throw failure(ex_usage, "--from is required");
    if (!have_rcpt_)
        throw failure(ex_usage, "at least one --to, --cc or --bcc is required");
    mime::message_builder b = builder_;
    for (const input_file& f : files_)
        add_file(b, f);
    for (const mime::dkim_signer& s : signers)
        b.dkim(s);
    diagnostics d;
    auto r = b.build(d);
    if (!r) {
        const int status = r.error() == error::file_unreadable ? ex_noinput : ex_dataerr;
        if (r.error() == error::dkim_signing_failed)
            throw failure(status, "--dkim-key: " + error_text(r.error(), d.detail));
        const std::string& field = d.field;
        // A header --header gave is that option's mistake, not the option whose field it names
        // (`--header 'From: x'` is not --from's). Only the body checks, after the headers', say
        // "text" or "html" of invalid UTF-8.
        if (r.error() == error::reserved_header)
            throw failure(status,
                          "--header " + field + ": " + r.error().message() + own_option_for(field));
        if (field == "List-Unsubscribe" || field == "List-Unsubscribe-Post")
            throw failure(status, std::string(field == "List-Unsubscribe"
                                                  ? "--list-unsubscribe: "
                                                  : "--list-unsubscribe-one-click: ") +
                                      error_text(r.error(), d.detail));
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
           "  --header 'Name: value' extra header field (repeatable)\n"
           "  --list-unsubscribe URI List-Unsubscribe (https: or mailto:; repeatable)\n"
           "  --list-unsubscribe-one-click  List-Unsubscribe-Post one-click (RFC 8058; needs\n"
           "                         an https --list-unsubscribe)\n"
           "  --8bit                 send UTF-8 text as 8bit, not quoted-printable or base64\n"
           "                         (the server must offer 8BITMIME)\n"
           "  --max-size BYTES       the most a file given above (or --eml) may hold; K, M, G\n"
           "                         suffixes (default 64M). Files must be regular files\n";
}

} // namespace mailroom::cli

#include "cli.hpp"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <iterator>

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

std::string read_file_or_fail(const std::string& flag, const std::string& path)
{
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
        throw failure(ex_dataerr, std::string(flag) + ": " + r.error().message() + ": " + d.detail +
                                      " in '" + text + "'");
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
    std::string bytes = read_file_or_fail("--eml", path);
    diagnostics d;
    auto m = mime::message::from_wire(std::move(bytes), d);
    if (!m)
        throw failure(ex_dataerr, "--eml: " + m.error().message() + ": " + d.to_string());
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
        // Name the option the user typed where one field maps to one option.
        std::string field = d.field;
        static constexpr std::string_view own_option[] = {"Subject", "text", "html",    "From",
                                                          "To",      "Cc",   "Reply-To"};
        if (std::find(std::begin(own_option), std::end(own_option), field) !=
            std::end(own_option)) {
            for (auto& c : field)
                c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            field = "--" + field + ": ";
        } else if (!field.empty() && field != "attachment" && !field.starts_with("inline"))
            field = "--header " + field + ": ";
        else if (!field.empty())
            field += ": ";
        throw failure(status, field + r.error().message() + ": " + d.detail);
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
           "  --text TEXT | --text-file FILE   text/plain body\n"
           "  --html TEXT | --html-file FILE   text/html body\n"
           "  --attach FILE          attach a file (repeatable)\n"
           "  --inline CID=FILE      inline part for <img src=\"cid:CID\"> (repeatable)\n"
           "  --header 'Name: value' extra header field (repeatable)\n";
}

} // namespace mailroom::cli

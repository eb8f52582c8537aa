// --dkim-* for compose, send and bulk: DKIM signatures (RFC 6376, RFC 8463) made with keys read
// and parsed once, at start-up, then used for every message of the run; and `mailroom dkim
// record`, the DNS TXT record that publishes a key. Nothing of a private key is ever printed.

#include "cli.hpp"

#include <algorithm>
#include <cstdio>

namespace mailroom::cli {

namespace {

constexpr std::size_t max_key_file = 64 * 1024;

mime::dkim_canonicalization parse_canon_word(std::string_view w, const std::string& v)
{
    if (w == "relaxed")
        return mime::dkim_canonicalization::relaxed;
    if (w == "simple")
        return mime::dkim_canonicalization::simple;
    throw failure(ex_usage, "--dkim-canon: expected relaxed, simple, relaxed/simple or "
                            "simple/relaxed (header/body), got '" +
                                v + "'");
}

// "Subject:To,Date" (colons or commas, white space around names ignored).
std::vector<std::string> parse_header_list(const std::string& v)
{
    std::vector<std::string> out;
    std::size_t start = 0;
    for (;;) {
        const std::size_t end = v.find_first_of(":,", start);
        std::string name = v.substr(start, end == std::string::npos ? end : end - start);
        const auto first = name.find_first_not_of(" \t");
        const auto last = name.find_last_not_of(" \t");
        name = first == std::string::npos ? "" : name.substr(first, last - first + 1);
        if (name.empty())
            throw failure(ex_usage, "--dkim-headers: expected header field names separated by "
                                    "':' or ',', got '" +
                                        v + "'");
        out.push_back(std::move(name));
        if (end == std::string::npos)
            return out;
        start = end + 1;
    }
}

const char* algorithm_name(mime::dkim_algorithm a)
{
    return a == mime::dkim_algorithm::ed25519_sha256 ? "ed25519-sha256" : "rsa-sha256";
}

} // namespace

bool dkim_options::take_group(std::string_view flag, arg_reader& args)
{
    // A group is --dkim-key, --dkim-domain and --dkim-selector in any order; an option its
    // group already has starts the next group (the next signature).
    std::optional<std::string> group::*slot = nullptr;
    if (flag == "--dkim-key")
        slot = &group::key;
    else if (flag == "--dkim-domain")
        slot = &group::domain;
    else if (flag == "--dkim-selector")
        slot = &group::selector;
    else
        return false;
    std::string v = args.value();
    if (groups_.empty() || groups_.back().*slot)
        groups_.emplace_back();
    groups_.back().*slot = std::move(v);
    return true;
}

bool dkim_options::take(std::string_view flag, arg_reader& args)
{
    if (take_group(flag, args))
        return true;
    if (flag == "--dkim-canon") {
        const std::string v = args.value();
        const auto slash = v.find('/');
        header_canon_ = parse_canon_word(std::string_view(v).substr(0, slash), v);
        body_canon_ = slash == std::string::npos
                          ? header_canon_
                          : parse_canon_word(std::string_view(v).substr(slash + 1), v);
    } else if (flag == "--dkim-headers") {
        headers_ = parse_header_list(args.value());
    } else if (flag == "--dkim-expire") {
        expire_ = std::chrono::seconds(parse_count("--dkim-expire", args.value(), 1, 315'360'000));
    } else {
        return false;
    }
    if (shared_flag_.empty())
        shared_flag_ = std::string(flag);
    return true;
}

std::vector<mime::dkim_signer> dkim_options::signers() const
{
    if (groups_.empty()) {
        if (!shared_flag_.empty())
            throw failure(ex_usage, shared_flag_ +
                                        " needs a signature: --dkim-key FILE --dkim-domain "
                                        "DOMAIN --dkim-selector NAME");
        return {};
    }
    // Every group complete before any file is read.
    for (const group& g : groups_) {
        std::string missing;
        for (auto [value, name] :
             {std::pair{&g.key, "--dkim-key"}, std::pair{&g.domain, "--dkim-domain"},
              std::pair{&g.selector, "--dkim-selector"}})
            if (!*value)
                missing += missing.empty() ? name : std::string(" and ") + name;
        if (missing.empty())
            continue;
        const std::string which = g.key      ? "--dkim-key '" + *g.key + "'"
                                  : g.domain ? "--dkim-domain '" + *g.domain + "'"
                                             : "--dkim-selector '" + *g.selector + "'";
        throw failure(ex_usage, which + " needs " + missing +
                                    " (each signature takes --dkim-key, --dkim-domain and "
                                    "--dkim-selector)");
    }
    std::vector<mime::dkim_signer> out;
    for (const group& g : groups_) {
        mime::dkim_options o;
        o.domain = *g.domain;
        o.selector = *g.selector;
        o.header_canonicalization = header_canon_;
        o.body_canonicalization = body_canon_;
        o.headers = headers_;
        o.expire_after = expire_;
        // Read here, as every input file is: a missing file, a directory or a FIFO is
        // ex_noinput with one line saying so.
        std::string pem = read_input_file("--dkim-key", *g.key);
        const std::string file = "--dkim-key '" + *g.key + "'";
        if (pem.size() > max_key_file) {
            std::fill(pem.begin(), pem.end(), '\0');
            throw failure(ex_dataerr, file + ": not a DKIM private key (larger than 64 KiB)");
        }
        diagnostics d;
        auto s = mime::dkim_signer::from_pem(pem, std::move(o), d);
        std::fill(pem.begin(), pem.end(), '\0');
        if (!s) {
            // The detail names what is wrong, never the key's contents.
            std::string where = file;
            if (d.field == "domain")
                where = "--dkim-domain '" + *g.domain + "'";
            else if (d.field == "selector")
                where = "--dkim-selector '" + *g.selector + "'";
            else if (d.field == "headers")
                where = "--dkim-headers";
            const int status = s.error() == error::file_unreadable ? ex_noinput : ex_dataerr;
            throw failure(status, where + ": " + error_text(s.error(), d.detail));
        }
        out.push_back(std::move(*s));
    }
    return out;
}

mime::message dkim_options::sign(const mime::message& m, std::span<const mime::dkim_signer> signers)
{
    if (signers.empty())
        return m;
    diagnostics d;
    auto r = mime::dkim_sign(m, signers, std::chrono::system_clock::now(), d);
    if (!r)
        throw failure(r.error() == error::file_unreadable ? ex_noinput : ex_dataerr,
                      "--eml: " + error_text(r.error(), d.to_string()));
    return std::move(*r);
}

const char* dkim_options::usage()
{
    return "  --dkim-key FILE --dkim-domain DOMAIN --dkim-selector NAME\n"
           "                         sign with this PEM private key (RSA of 1024 bits or more,\n"
           "                         or Ed25519) as DOMAIN, its public key published at\n"
           "                         NAME._domainkey.DOMAIN ('mailroom dkim record' prints the\n"
           "                         record); repeat the three for another signature (e.g.\n"
           "                         one RSA and one Ed25519)\n"
           "  --dkim-canon C         relaxed (default), simple, relaxed/simple or simple/relaxed\n"
           "                         (header/body), for every signature\n"
           "  --dkim-headers LIST    the header fields to sign, separated by ':' or ','\n"
           "                         (default: From, To, Cc, Subject, Date, Message-ID and the\n"
           "                         others a message may have; each only where present)\n"
           "  --dkim-expire SECONDS  signatures expire this long after they are made (x=)\n";
}

int dkim_main(std::span<char*> argv)
{
    if (argv.empty()) {
        std::fputs(dkim_usage(), stderr);
        return ex_usage;
    }
    const std::string_view sub = argv[0];
    if (sub == "--help" || sub == "-h") {
        std::fputs(dkim_usage(), stdout);
        return ex_ok;
    }
    if (sub != "record")
        throw failure(ex_usage,
                      "dkim: unknown subcommand '" + std::string(sub) + "' (expected: record)");
    arg_reader args(argv.subspan(1));
    dkim_options dkim;
    bool json = false;
    for (std::string_view flag = args.next_flag(); !flag.empty(); flag = args.next_flag()) {
        if (flag == "--help" || flag == "-h") {
            std::fputs(dkim_usage(), stdout);
            return ex_ok;
        }
        if (flag == "--version") {
            print_version();
            return ex_ok;
        }
        if (dkim.take_group(flag, args))
            continue;
        if (flag == "--json")
            json = true;
        else
            throw failure(ex_usage, "dkim record: unknown option " + std::string(flag));
    }
    const auto signers = dkim.signers();
    if (signers.empty())
        throw failure(ex_usage,
                      "dkim record: --dkim-key, --dkim-domain and --dkim-selector are required");
    std::string out = json ? "{\"records\":[" : "";
    for (const mime::dkim_signer& s : signers) {
        const std::string name = s.options().selector + "._domainkey." + s.options().domain;
        const std::string value = s.dns_record();
        if (json) {
            if (&s != &signers.front())
                out += ',';
            out += "{\"name\":" + json_string(name) +
                   ",\"type\":\"TXT\",\"value\":" + json_string(value) + ",\"algorithm\":\"" +
                   algorithm_name(s.algorithm()) +
                   "\",\"key_bits\":" + std::to_string(s.key_bits()) + "}";
            continue;
        }
        // A zone-file line: a TXT string holds at most 255 octets (RFC 1035 §3.3); a
        // verifier joins the strings (RFC 6376 §3.6.2.2).
        out += name + ". IN TXT";
        for (std::size_t i = 0; i < value.size(); i += 255)
            out += " \"" + value.substr(i, 255) + "\"";
        out += '\n';
    }
    if (json)
        out += "]}\n";
    if (std::fwrite(out.data(), 1, out.size(), stdout) != out.size() || std::fflush(stdout) != 0)
        throw failure(74, "cannot write to stdout"); // EX_IOERR
    return ex_ok;
}

const char* dkim_usage()
{
    return "usage: mailroom dkim record --dkim-key FILE --dkim-domain DOMAIN --dkim-selector NAME\n"
           "                            [--json]\n"
           "prints the DNS TXT record that publishes the key's public half at\n"
           "NAME._domainkey.DOMAIN, as a zone-file line (strings of at most 255 octets), or with\n"
           "--json as {\"records\":[{\"name\",\"type\",\"value\",\"algorithm\",\"key_bits\"}]};\n"
           "repeat the three options for more keys. The private key is never printed.\n";
}

} // namespace mailroom::cli

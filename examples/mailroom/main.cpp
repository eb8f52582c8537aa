// mailroom: compose (and, later, send) email from the command line.
//
// Exit statuses follow sysexits.h (see cli.hpp) and are part of the tool's contract.

#include "cli.hpp"

#include <mailroom/version.hpp>

#include <cstdio>
#include <cstring>
#include <exception>

namespace mailroom::cli {

namespace {

const char* top_usage =
    "usage: mailroom <command> [options]\n"
    "commands:\n"
    "  compose   write a message in wire form (CRLF) to stdout\n"
    "  send      submit one message to an SMTP server\n"
    "  bulk      send many messages through a connection pool and rate limiter\n"
    "  sink      a local SMTP server that accepts everything (development)\n"
    "  providers list the provider presets (--provider NAME) and their limits\n"
    "  bounce    read a bounce (an RFC 3464 delivery-status report) and print it\n"
    "  dkim      'dkim record': the DNS TXT record for a DKIM key (--dkim-* options)\n"
    "run 'mailroom <command> --help' for a command's options, 'mailroom --version' for the\n"
    "version\n";

// Diagnostics quote user input: keep them one line whatever that input holds.
std::string one_line(std::string_view s)
{
    std::string out;
    for (unsigned char c : s) {
        if (c < 0x20 || c == 0x7F) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02X", c);
            out += buf;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

const char* compose_extra_usage =
    "  --eml FILE             write this message file instead ('-': standard input), in wire\n"
    "                         form (CRLF line ends); with --dkim-*, signed\n"
    "signing (DKIM):\n";

bool write_all(std::string_view s)
{
    return std::fwrite(s.data(), 1, s.size(), stdout) == s.size();
}

} // namespace

void print_version()
{
    std::printf("mailroom %s\n", MAILROOM_VERSION_STRING);
}

int compose_main(std::span<char*> argv)
{
    arg_reader args(argv);
    message_options msg;
    dkim_options dkim;
    std::optional<std::string> eml;
    for (std::string_view flag = args.next_flag(); !flag.empty(); flag = args.next_flag()) {
        if (flag == "--help" || flag == "-h") {
            std::printf("usage: mailroom compose [options]\n%s%s%s", message_options::usage(),
                        compose_extra_usage, dkim_options::usage());
            return ex_ok;
        }
        if (flag == "--version") {
            print_version();
            return ex_ok;
        }
        if (msg.take(flag, args) || dkim.take(flag, args))
            continue;
        if (flag != "--eml")
            throw failure(ex_usage, "compose: unknown option " + std::string(flag));
        eml = args.value();
        if (*eml == "-")
            claim_stdin("--eml");
    }
    // The keys are read and parsed once, before the message.
    const std::vector<mime::dkim_signer> signers = dkim.signers();
    const mime::message m =
        eml ? dkim_options::sign(msg.build_from_eml(*eml), signers) : msg.build(signers);
    auto reader = m.open();
    error_code ec;
    for (std::string_view chunk = reader.next(ec); !chunk.empty(); chunk = reader.next(ec))
        if (!write_all(chunk))
            throw failure(74, "cannot write to stdout"); // EX_IOERR
    if (ec)
        throw failure(ec == error::file_unreadable ? ex_noinput : ex_dataerr,
                      "writing the message: " + ec.message());
    if (std::fflush(stdout) != 0)
        throw failure(74, "cannot write to stdout");
    return ex_ok;
}

} // namespace mailroom::cli

int main(int argc, char** argv)
{
    using namespace mailroom::cli;
    std::span<char*> args(argv + 1, static_cast<std::size_t>(argc > 0 ? argc - 1 : 0));
    try {
        if (args.empty()) {
            std::fputs(top_usage, stderr);
            return ex_usage;
        }
        const std::string_view cmd = args[0];
        if (cmd == "--help" || cmd == "-h" || cmd == "help") {
            std::fputs(top_usage, stdout);
            return ex_ok;
        }
        if (cmd == "--version") {
            print_version();
            return ex_ok;
        }
        if (cmd == "compose")
            return compose_main(args.subspan(1));
        if (cmd == "send")
            return send_main(args.subspan(1));
        if (cmd == "sink")
            return sink_main(args.subspan(1));
        if (cmd == "bulk")
            return bulk_main(args.subspan(1));
        if (cmd == "providers")
            return providers_main(args.subspan(1));
        if (cmd == "bounce")
            return bounce_main(args.subspan(1));
        if (cmd == "dkim")
            return dkim_main(args.subspan(1));
        std::fprintf(stderr, "mailroom: unknown command '%s'\n%s", one_line(cmd).c_str(),
                     top_usage);
        return ex_usage;
    } catch (const failure& f) {
        std::fprintf(stderr, "mailroom: %s\n", one_line(f.what()).c_str());
        return f.status;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "mailroom: %s\n", e.what());
        return 70; // EX_SOFTWARE
    }
}

// Connection options shared by send and bulk, and what both report.

#include "cli.hpp"

#include <mailroom/smtp/reply_error.hpp>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>

extern char** environ;

namespace mailroom::cli {

namespace {

server_url parse_url(const std::string& url)
{
    server_url u;
    std::string_view rest = url;
    if (rest.starts_with("smtp://"))
        rest.remove_prefix(7);
    else if (rest.starts_with("smtps://"))
        rest.remove_prefix(8), u.implicit_tls = true;
    else
        throw failure(ex_usage, "--server: expected smtp://host[:port] or smtps://host[:port]");
    if (!rest.empty() && rest.back() == '/')
        rest.remove_suffix(1);
    std::string_view port;
    if (rest.starts_with("[")) { // [IPv6]:port
        const auto close = rest.find(']');
        if (close == std::string_view::npos)
            throw failure(ex_usage, "--server: unterminated '[' in the host");
        u.host = std::string(rest.substr(1, close - 1));
        rest.remove_prefix(close + 1);
        if (rest.starts_with(":"))
            port = rest.substr(1);
        else if (!rest.empty())
            throw failure(ex_usage, "--server: unexpected text after the host");
    } else {
        const auto colon = rest.rfind(':');
        u.host = std::string(rest.substr(0, colon));
        if (colon != std::string_view::npos)
            port = rest.substr(colon + 1);
    }
    if (u.host.empty() || u.host.find_first_of("/@?#") != std::string::npos)
        throw failure(ex_usage, "--server: no host name in '" + url + "'");
    if (!port.empty()) {
        unsigned long p = 0;
        for (char c : port) {
            if (c < '0' || c > '9' || (p = p * 10 + static_cast<unsigned>(c - '0')) > 65535)
                throw failure(ex_usage, "--server: bad port in '" + url + "'");
        }
        if (p == 0)
            throw failure(ex_usage, "--server: bad port in '" + url + "'");
        u.port = static_cast<std::uint16_t>(p);
    }
    return u;
}

std::string secret_from_env(const std::string& flag, const std::string& var)
{
    const char* v = std::getenv(var.c_str());
    if (!v || !*v)
        throw failure(ex_usage, flag + ": the environment variable " + var + " is not set");
    return v;
}

// --password-cmd, as msmtp's passwordeval: `/bin/sh -c CMD`, its standard output with one
// trailing newline removed is the password. Its standard error stays the user's terminal (for
// a passphrase prompt); its standard input too, unless an option reads the message from it.
// Failures never show what it printed.
std::string secret_from_command(const std::string& cmd)
{
    auto fail = [](const std::string& why) {
        return failure(ex_noperm, "--password-cmd: " + why);
    };
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0)
        throw fail(std::string("cannot make a pipe: ") + std::strerror(errno));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
    if (stdin_claimed())
        posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    char sh[] = "sh", dash_c[] = "-c";
    std::string command = cmd;
    char* argv[] = {sh, dash_c, command.data(), nullptr};
    pid_t pid = 0;
    const int spawned = posix_spawn(&pid, "/bin/sh", &fa, nullptr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(out[1]);
    if (spawned != 0) {
        ::close(out[0]);
        throw fail(std::string("cannot run /bin/sh: ") + std::strerror(spawned));
    }
    // Read to the end whatever it prints, keeping at most `limit` octets.
    constexpr std::size_t limit = 64 * 1024;
    std::string secret;
    bool too_long = false;
    char buf[4096];
    for (;;) {
        const ssize_t n = ::read(out[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (secret.size() + static_cast<std::size_t>(n) > limit)
            too_long = true;
        else
            secret.append(buf, static_cast<std::size_t>(n));
    }
    ::close(out[0]);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFSIGNALED(status))
        throw fail("the command was killed by signal " + std::to_string(WTERMSIG(status)));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        throw fail("the command failed (exit status " + std::to_string(WEXITSTATUS(status)) + ")");
    if (too_long)
        throw fail("the command printed more than 64 KiB");
    if (secret.ends_with("\r\n"))
        secret.resize(secret.size() - 2);
    else if (secret.ends_with('\n'))
        secret.pop_back();
    if (secret.empty())
        throw fail("the command printed no password");
    return secret;
}

} // namespace

std::string json_string(std::string_view s)
{
    std::string out = "\"";
    for (unsigned char c : s) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
            if (c < 0x20 || c == 0x7F) {
                char buf[8];
                std::snprintf(buf, sizeof buf, "\\u%04x", c);
                out += buf;
            } else {
                out += static_cast<char>(c);
            }
        }
    }
    return out + "\"";
}

bool is_one_of(error_code ec, std::initializer_list<error> list)
{
    for (error e : list)
        if (ec == e)
            return true;
    return false;
}

// The exit status for an error, given whether it came from the AUTH step.
int exit_for(error_code ec, bool during_auth)
{
    if (!ec)
        return ex_ok;
    if (ec.category() == smtp::reply_category()) {
        // RFC 4954 §6: 454 to AUTH is a temporary authentication failure, like any 4yz
        // (RFC 5321 §4.2.1): try again later. Only a 5yz (535, 534, 538, ...) means the
        // credentials or the mechanism won't do.
        if (ec.value() / 100 == 4)
            return ex_tempfail;
        if (during_auth)
            return ex_noperm;
        return ec.value() / 100 == 5 ? ex_unavailable : ex_tempfail;
    }
    // Credentials kept back because TLS is off (--tls none without --allow-plaintext-auth) is
    // a transport security failure, as is TLS stripped on the path (--tls opportunistic with
    // credentials and no STARTTLS: starttls_unavailable, below).
    if (ec == error::plaintext_auth_refused)
        return ex_protocol;
    // The shared limit store (--limit-store) refused the credentials, or its answers: the
    // configuration must change.
    if (ec == error::redis_auth_failed)
        return ex_noperm;
    if (ec == error::redis_error_reply)
        return ex_unavailable;
    // No access token: the OAuth2 endpoint refused the grant, failed, or its configuration
    // can't work (issue 10's contract: 77, with the endpoint's error text).
    if (is_one_of(ec, {error::token_refresh_failed, error::token_refresh_refused,
                       error::invalid_token_source}))
        return ex_noperm;
    if (is_one_of(ec, {error::auth_mechanism_unavailable, error::sasl_bad_challenge,
                       error::sasl_server_error, error::sasl_incomplete,
                       error::scram_server_signature_mismatch, error::invalid_credentials,
                       error::saslprep_unsupported}))
        return ex_noperm;
    if (is_one_of(
            ec, {error::size_exceeded, error::smtputf8_unavailable, error::eight_bit_unavailable}))
        return ex_unavailable;
    if (is_one_of(ec,
                  {error::protocol_error, error::bad_reply_code, error::reply_code_mismatch,
                   error::reply_line_too_long, error::reply_too_long, error::starttls_unavailable,
                   error::starttls_injection, error::tls_handshake_failed,
                   error::certificate_rejected, error::tls_configuration_invalid}))
        return ex_protocol;
    if (ec == condition::invalid_input)
        return ex_dataerr;
    return ex_tempfail; // timeouts, lost connections, unknown outcome, network errors
}

std::string hint_for(error_code ec, smtp::tls_mode mode)
{
    if (ec == error::starttls_unavailable && mode == smtp::tls_mode::required)
        return " (use --tls none for a server without TLS, e.g. a local test server)";
    return {};
}

bool server_options::take(std::string_view flag, arg_reader& args)
{
    auto& opts = opts_;
    if (flag == "--server") {
        url_ = parse_url(args.value());
    } else if (flag == "--tls") {
        tls_mode_ = args.value();
        if (*tls_mode_ != "required" && *tls_mode_ != "opportunistic" && *tls_mode_ != "none")
            throw failure(ex_usage, "--tls: expected required, opportunistic or none");
    } else if (flag == "--ca-file") {
        opts.tls.ca_file = args.value();
        if (std::FILE* f = std::fopen(opts.tls.ca_file.c_str(), "r"))
            std::fclose(f);
        else
            throw failure(ex_noinput, "--ca-file: cannot read '" + opts.tls.ca_file + "'");
    } else if (flag == "--tls-name") {
        opts.tls.verify_name = args.value();
    } else if (flag == "--user") {
        user_ = args.value();
    } else if (flag == "--password-env" || flag == "--password-file" || flag == "--password-cmd") {
        // --password-cmd runs a program: it can't be one of two sources where one is dropped.
        if (!password_flag_.empty() && password_flag_ != flag &&
            (flag == "--password-cmd" || password_flag_ == "--password-cmd"))
            throw failure(ex_usage, std::string(flag) + " can't be combined with " +
                                        password_flag_ + " (one source for the password)");
        password_flag_ = std::string(flag);
        if (flag == "--password-env") {
            password_ = secret_from_env("--password-env", args.value());
        } else if (flag == "--password-file") {
            std::string p = read_file_or_fail("--password-file", args.value());
            while (!p.empty() && (p.back() == '\n' || p.back() == '\r'))
                p.pop_back();
            password_ = std::move(p);
        } else {
            password_cmd_ = args.value(); // run by finish(), once every option is known
            if (password_cmd_->empty())
                throw failure(ex_usage, "--password-cmd: the command is empty");
        }
    } else if (flag == "--oauth-token-env") {
        token_ = secret_from_env("--oauth-token-env", args.value());
    } else if (take_oauth(flag, args)) {
    } else if (flag == "--auth") {
        auth_ = args.value();
    } else if (flag == "--allow-plaintext-auth") {
        allow_plain_ = true;
    } else if (flag == "--provider") {
        provider_ = &provider_named(args.value());
    } else if (flag == "--helo") {
        opts.helo_name = args.value();
    } else if (flag == "--timeout") {
        const std::string v = args.value();
        char* end = nullptr;
        const long s = std::strtol(v.c_str(), &end, 10);
        if (v.empty() || *end || s <= 0 || s > 86400)
            throw failure(ex_usage, "--timeout: expected whole seconds from 1 to 86400");
        timeout_ = s;
    } else if (flag == "-v") {
        verbose_ = true;
    } else {
        return false;
    }
    return true;
}

smtp::client_options server_options::finish() const
{
    auto opts = opts_;
    if (!url_ && !provider_)
        throw failure(ex_usage, "--server is required");
    if (url_) {
        opts.host = url_->host;
        opts.port = url_->port;
    }
    if (url_ && url_->implicit_tls)
        opts.tls.mode = smtp::tls_mode::implicit;
    else if (tls_mode_)
        opts.tls.mode = *tls_mode_ == "none"            ? smtp::tls_mode::none
                        : *tls_mode_ == "opportunistic" ? smtp::tls_mode::opportunistic
                                                        : smtp::tls_mode::required;
    if (timeout_)
        opts.timeouts.cap(std::chrono::seconds(*timeout_));
    if ((password_ || password_cmd_ || token_ || oauth_.any()) && !user_)
        throw failure(ex_usage, "--password-env, --password-file, --password-cmd, "
                                "--oauth-token-env and --oauth-* need --user");
    if (user_) {
        if (!password_ && !password_cmd_ && !token_ && !oauth_.grant())
            throw failure(ex_usage, "--user needs --password-env, --password-file, "
                                    "--password-cmd, --oauth-token-env, or an OAuth2 grant "
                                    "(--oauth-refresh-token-env, --oauth-client-secret-env or "
                                    "--oauth-service-account) (passwords never go on the "
                                    "command line)");
        if (token_ && oauth_.any())
            throw failure(ex_usage, "--oauth-token-env (a token) can't be combined with "
                                    "--oauth-* (a grant that gets tokens)");
        smtp::credentials c;
        c.username = *user_;
        c.password = password_cmd_ ? secret_from_command(*password_cmd_) : password_.value_or("");
        if (token_)
            c.token_provider = [t = *token_](bool) {
                return t;
            };
        c.allow_plaintext = allow_plain_;
        if (auth_) {
            std::string name = *auth_;
            auto m = smtp::auth_mechanism_from_name(name);
            if (!m)
                throw failure(ex_usage, "--auth: expected plain, login, cram-md5, "
                                        "scram-sha-256, xoauth2 or oauthbearer");
            c.mechanism = *m;
        }
        opts.auth = std::move(c);
    } else if (auth_) {
        throw failure(ex_usage, "--auth needs --user");
    }
    apply_provider(opts);
    if (verbose_) {
        opts.log.level = log_level::trace;
        opts.log.sink = [](log_level, std::string_view line) {
            std::fprintf(stderr, "%.*s\n", static_cast<int>(line.size()), line.data());
        };
    } else {
        opts.log.level = log_level::off;
    }

    return opts;
}

const char* server_options::usage()
{
    return "  --server URL           smtp://host[:port] (default 587, STARTTLS per --tls) or\n"
           "                         smtps://host[:port] (default 465)\n"
           "  --provider NAME        a preset ('mailroom providers'): its server, --tls, --auth\n"
           "                         (where it suits the credentials) and, for bulk, its --rate\n"
           "                         buckets; each option given overrides the preset's\n"
           "  --tls MODE             required (default) | opportunistic | none\n"
           "  --ca-file FILE         PEM trust anchors instead of the system store\n"
           "  --tls-name NAME        name to verify and send as SNI (default: the URL's host)\n"
           "  --user NAME            with --password-env VAR, --password-file FILE ('-': standard\n"
           "                         input) or --password-cmd 'CMD' (its output, run by\n"
           "                         /bin/sh), or --oauth-token-env VAR for XOAUTH2/OAUTHBEARER\n"
           "                         (a token as it is), or an OAuth2 grant that gets tokens and\n"
           "                         refreshes them (below)\n"
           "  --auth MECH            plain | login | cram-md5 | scram-sha-256 | xoauth2 | "
           "oauthbearer\n"
           "  --allow-plaintext-auth permit AUTH without TLS\n"
           "  --helo NAME            EHLO name\n"
           "  --timeout SECONDS      upper bound for every per-phase timeout\n"
           "  -v                     transcript on stderr, secrets redacted\n"
           "OAuth2 (XOAUTH2/OAUTHBEARER; tokens fetched over HTTPS, cached, refreshed ahead of\n"
           "expiry; the endpoint's certificate checked like the server's, --ca-file included):\n"
           "  --oauth-refresh-token-env VAR   refresh-token grant (Gmail, Outlook.com, M365\n"
           "                         delegated), with --oauth-client-id and, for a confidential\n"
           "                         client, --oauth-client-secret-env\n"
           "  --oauth-client-secret-env VAR   without a refresh token: client-credentials grant\n"
           "                         (Microsoft 365 app-only), with --oauth-client-id\n"
           "  --oauth-service-account FILE    JWT-bearer grant with a Google service account's\n"
           "                         JSON key (domain-wide delegation; --user is the mailbox)\n"
           "  --oauth-client-id ID   the OAuth2 client\n"
           "  --oauth-token-url URL  the token endpoint (default: --provider's, or the key "
           "file's)\n"
           "  --oauth-scope SCOPE    scopes, space-separated (default: --provider's)\n";
}

} // namespace mailroom::cli

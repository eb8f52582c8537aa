// The mailroom command-line tool: shared option handling.
#pragma once

#include <mailroom/limit/rate_limiter_options.hpp>
#include <mailroom/limit/store_options.hpp>
#include <mailroom/mime/dkim.hpp>
#include <mailroom/mime/message_builder.hpp>
#include <mailroom/providers/preset.hpp>
#include <mailroom/smtp/client_options.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

namespace mailroom::cli {

// sysexits.h values, as msmtp uses them. Part of the CLI's public contract.
enum exit_status : int {
    ex_ok = 0,
    ex_usage = 64,
    ex_dataerr = 65,
    ex_noinput = 66,
    ex_unavailable = 69, // permanent failure
    ex_tempfail = 75,    // temporary failure or unknown outcome
    ex_protocol = 76,    // protocol violation or TLS security failure
    ex_noperm = 77,      // authentication failed
};

/// Thrown while handling arguments; main() prints "mailroom: <what>" and exits with `status`.
struct failure : std::runtime_error {
    failure(int status, const std::string& what)
        : std::runtime_error(what)
        , status(status)
    {
    }
    int status;
};

/// Walks argv: `--name value` and `--name=value`.
class arg_reader {
public:
    explicit arg_reader(std::span<char*> args)
        : args_(args)
    {
    }
    /// The next option's name (e.g. "--to"), or empty at the end.
    std::string_view next_flag();
    /// The current option's value; a usage failure when it has none.
    std::string value();

private:
    std::span<char*> args_;
    std::size_t pos_ = 0;
    std::string_view flag_;
    std::string inline_value_;
    bool has_inline_ = false;
};

/// "mailroom X.Y.Z" on stdout, for --version.
void print_version();

/// Records that `flag` reads standard input (its value is "-"); a usage failure when another
/// option already does, since only one can. Claiming it again for the same option is fine.
void claim_stdin(const std::string& flag);
/// Whether an option reads standard input.
bool stdin_claimed();

/// An error's text with its diagnostics detail: "message: detail", or the detail alone where it
/// already says what the message says (so no error says its text twice).
std::string error_text(error_code ec, const std::string& detail);

/// The message options shared by compose, send and bulk. take() consumes one if `flag` is one
/// of them and returns false otherwise.
class message_options {
public:
    bool take(std::string_view flag, arg_reader& args);
    /// Builds the message, signed by each of `signers` (--dkim-*); failures carry the exit
    /// status the contract gives them.
    mime::message build(std::span<const mime::dkim_signer> signers = {}) const;
    /// Reads a message file (--eml; "-" is standard input). A file's body is not read into
    /// memory: it is read again, in chunks, while the message is written. Its envelope comes from
    /// its headers, or from --from and
    /// --to/--cc/--bcc where those were given; other message options are refused.
    mime::message build_from_eml(const std::string& path) const;

    /// Usage text for these options.
    static const char* usage();

private:
    bool take_content(std::string_view flag, arg_reader& args);

    /// A file named by an option, read (or checked) by build(), once every option, --max-size
    /// included, is known.
    struct input_file {
        std::string flag; // --text-file, --html-file, --attach, --inline
        std::string path;
        std::string content_id; // --inline's CID
    };
    void add_file(mime::message_builder& b, const input_file& f) const;
    void take_file(std::string_view flag, std::string path);

    mime::message_builder builder_;
    std::vector<input_file> files_;
    bool have_from_ = false, have_rcpt_ = false, have_text_ = false, have_html_ = false;
    bool have_content_ = false; // any option that shapes the message itself
    std::optional<mailbox> from_;
    std::vector<mailbox> rcpts_;
    std::vector<std::string> header_names_; // given with --header
};

/// --dkim-key FILE --dkim-domain DOMAIN --dkim-selector NAME (a group, repeatable: one
/// signature each), --dkim-canon, --dkim-headers and --dkim-expire (for every group), shared by
/// compose, send and bulk; and `mailroom dkim record` (dkim_options.cpp).
class dkim_options {
public:
    /// Consumes `flag` if it is one of these options; false otherwise.
    bool take(std::string_view flag, arg_reader& args);
    /// Consumes --dkim-key, --dkim-domain or --dkim-selector; false for anything else.
    bool take_group(std::string_view flag, arg_reader& args);
    /// One signer per group, each key read and parsed once, here. Usage failures (64) for an
    /// incomplete group or group options without one; a key file that can't be read is
    /// ex_noinput, a key or a domain, selector or header list that can't be used ex_dataerr.
    /// Never says anything of a key's contents.
    std::vector<mime::dkim_signer> signers() const;
    /// `m` signed by `signers` now (for --eml messages); `m` itself when there are none.
    static mime::message sign(const mime::message& m, std::span<const mime::dkim_signer> signers);
    static const char* usage();

private:
    struct group {
        std::optional<std::string> key, domain, selector;
    };
    std::vector<group> groups_;
    std::string shared_flag_; // the first of --dkim-canon, --dkim-headers, --dkim-expire given
    mime::dkim_canonicalization header_canon_ = mime::dkim_canonicalization::relaxed;
    mime::dkim_canonicalization body_canon_ = mime::dkim_canonicalization::relaxed;
    std::vector<std::string> headers_;
    std::optional<std::chrono::seconds> expire_;
};

struct server_url {
    std::string host;
    std::uint16_t port = 0;
    bool implicit_tls = false;
};

/// The options that say how to reach and log in to a server, shared by send and bulk.
class server_options {
public:
    /// Consumes `flag` if it is one of these options; false otherwise.
    bool take(std::string_view flag, arg_reader& args);
    /// The client options; usage failures for missing or contradictory ones.
    smtp::client_options finish() const;
    /// With --oauth-* options: gives `o`'s credentials a token source on `ex` (one for the
    /// whole run, shared by every connection). Call after finish(), before connecting.
    /// oauth_options.cpp.
    void attach_tokens(smtp::client_options& o, const boost::asio::any_io_executor& ex) const;
    static const char* usage();
    /// The preset --provider named, or nullptr (provider_options.cpp).
    const providers::preset* provider() const noexcept { return provider_; }

private:
    /// Fills what --server, --tls and --auth left unsaid from --provider's preset.
    void apply_provider(smtp::client_options& o) const;

    smtp::client_options opts_;
    const providers::preset* provider_ = nullptr;
    std::optional<server_url> url_;
    std::optional<std::string> tls_mode_, user_, password_, token_, auth_;
    std::optional<std::string> password_cmd_;
    std::string password_flag_; // the option that gave the password, if one did
    bool allow_plain_ = false, verbose_ = false;
    std::optional<long> timeout_;
    /// --oauth-token-url, --oauth-client-id, --oauth-client-secret-env,
    /// --oauth-refresh-token-env, --oauth-scope, --oauth-service-account (oauth_options.cpp).
    struct oauth_flags {
        std::optional<std::string> token_url, client_id, client_secret, refresh_token, scope,
            service_account;
        bool any() const noexcept
        {
            return token_url || client_id || client_secret || refresh_token || scope ||
                   service_account;
        }
        /// Whether they name a grant (a refresh token, a client secret or a service account).
        bool grant() const noexcept { return refresh_token || client_secret || service_account; }
    };
    oauth_flags oauth_;
    bool take_oauth(std::string_view flag, arg_reader& args);
};

/// `v` as a whole number in [min, max]; a usage failure naming `flag` otherwise.
std::uint64_t parse_count(const std::string& flag, const std::string& v, std::uint64_t min,
                          std::uint64_t max);

/// The rate-limit options shared by send and bulk: --rate, --burst, --charge, and where the
/// buckets live (--limit-store, --limit-key, --limit-store-password-env/-file,
/// --limit-store-fallback, --limit-processes).
class limit_options {
public:
    /// Consumes `flag` if it is one of these options; false otherwise.
    bool take(std::string_view flag, arg_reader& args);
    /// The buckets, each with --burst (default: its rate); usage failures for contradictions.
    limit::rate_limiter_options limits() const;
    /// The store; usage failures for store options without --limit-store, and so on.
    limit::store_options store() const;
    /// Whether --rate was given.
    bool has_rates() const noexcept { return !rates_.empty(); }
    /// limits(), or with --provider the preset's limits with --rate's buckets in place of its
    /// own where given, and --charge's charge if `charge_given`. provider_options.cpp.
    limit::rate_limiter_options limits_for(const providers::preset* p, bool charge_given) const;
    /// store(), where the preset's buckets count as --rate's.
    limit::store_options store_for(const providers::preset* p) const;
    static const char* usage();

private:
    std::vector<limit::bucket_options> rates_;
    std::optional<std::uint64_t> burst_;
    limit::charge charge_ = limit::charge::per_message;
    limit::store_options store_;
    std::optional<std::string> password_;
};

/// The exit status the contract gives an error (`during_auth`: it came from the AUTH step).
int exit_for(error_code ec, bool during_auth = false);
/// What to try after `ec`, appended to its error line: " (use --tls none ...)" when a server
/// without STARTTLS was refused under --tls required; empty otherwise.
std::string hint_for(error_code ec, smtp::tls_mode mode);
/// `s` as a JSON string literal.
std::string json_string(std::string_view s);

// provider_options.cpp
/// The preset `name` names (any case); a usage failure listing close names otherwise.
const providers::preset& provider_named(const std::string& name);
/// A bucket as --rate takes it: "500/d", "30/m"; " (burst B)" where it differs.
std::string rate_text(const limit::bucket_options& b);
/// Every bucket, e.g. "1/s, 200/d (recipients)"; "none" without buckets.
std::string limits_text(const limit::rate_limiter_options& l);
/// The members "provider", "server" and "limits" of a JSON object: what a run uses.
std::string settings_json(const smtp::client_options& o, const limit::rate_limiter_options& l,
                          const providers::preset* p);
/// --dry-run: the settings on stdout, as text or a JSON object.
void print_settings(const smtp::client_options& o, const limit::rate_limiter_options& l,
                    const providers::preset* p, bool json);

/// The contents of the file at `path` ("-": standard input, claimed for `flag`); an input
/// failure naming `flag` when it can't be read.
std::string read_file_or_fail(const std::string& flag, const std::string& path);

/// The most octets a message input (--text-file, --html-file, --eml, --attach, --inline) may
/// hold: --max-size, 64 MiB unless set.
std::uint64_t max_input_size();
/// Sets max_input_size().
void set_max_input_size(std::uint64_t octets);
/// --max-size's value: a whole number of octets, or with a K, M or G suffix (powers of 1024);
/// a usage failure otherwise.
std::uint64_t parse_size(const std::string& flag, const std::string& v);
/// A message input's contents ("-": standard input, claimed for `flag`): a regular file only
/// (ex_noinput, one line saying what it is otherwise), opened without blocking so a FIFO can't
/// hang the tool, and read to its end whatever its size by stat (files in /proc say 0), at most
/// max_input_size() octets (ex_dataerr past that).
std::string read_input_file(const std::string& flag, const std::string& path);

int compose_main(std::span<char*> args);
int send_main(std::span<char*> args);
const char* send_usage();
int sink_main(std::span<char*> args);
const char* bulk_usage();
int bulk_main(std::span<char*> args);
const char* sink_usage();
int providers_main(std::span<char*> args);
const char* providers_usage();
// bounce.cpp
int bounce_main(std::span<char*> args);
const char* bounce_usage();
int dkim_main(std::span<char*> args);
const char* dkim_usage();

} // namespace mailroom::cli

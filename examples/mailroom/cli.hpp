// The mailroom command-line tool: shared option handling.
#pragma once

#include <mailroom/mime/message_builder.hpp>

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

/// The message options shared by compose, send and bulk. take() consumes one if `flag` is one
/// of them and returns false otherwise.
class message_options {
public:
    bool take(std::string_view flag, arg_reader& args);
    /// Builds the message; failures carry the exit status the contract gives them.
    mime::message build() const;
    /// Reads a message file (--eml). Its envelope comes from its headers, or from --from and
    /// --to/--cc/--bcc where those were given; other message options are refused.
    mime::message build_from_eml(const std::string& path) const;

    /// Usage text for these options.
    static const char* usage();

private:
    bool take_content(std::string_view flag, arg_reader& args);

    mime::message_builder builder_;
    bool have_from_ = false, have_rcpt_ = false, have_text_ = false, have_html_ = false;
    bool have_content_ = false; // any option that shapes the message itself
    std::optional<mailbox> from_;
    std::vector<mailbox> rcpts_;
};

std::string read_file_or_fail(const std::string& flag, const std::string& path);

int compose_main(std::span<char*> args);
int send_main(std::span<char*> args);
const char* send_usage();
int sink_main(std::span<char*> args);
const char* sink_usage();

} // namespace mailroom::cli

// Private: the immutable content behind mime::message.
#pragma once

#include <mailroom/envelope.hpp>
#include <mailroom/error.hpp>
#include <mailroom/mime/message.hpp>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace mailroom::mime::detail {

/// One stretch of the wire form.
struct segment {
    enum class kind {
        bytes,         ///< `text` as it is, or `*data` when `data` is set
        base64_memory, ///< `data` in base64 lines, encoded while writing
        base64_file,   ///< the file at `path` (of `file_size` octets) in base64 lines
        file_crlf,     ///< the file at `path` (of `file_size` octets) from `file_offset` to its
                       ///< end, line breaks made CRLF and a CRLF added where it ends without one
    };
    kind k = kind::bytes;
    std::string text;
    std::shared_ptr<const std::string> data;
    std::filesystem::path path;
    std::uint64_t file_size = 0;
    std::uint64_t file_offset = 0;
    std::uint64_t size = 0; ///< octets this segment contributes to the wire form
};

struct message_data {
    envelope env;
    std::string message_id;
    std::vector<segment> segments;
    std::uint64_t size = 0;

    /// Appends literal bytes, merging with a preceding literal segment.
    void append_bytes(std::string_view s);
    /// Appends literal bytes held elsewhere (a builder's prepared body, a message's bytes): the
    /// string becomes its own segment, not copied, unless it is shorter than a segment costs
    /// (256 octets), when it is merged like the above.
    void append_shared(std::shared_ptr<const std::string> s);
    void append_base64(std::shared_ptr<const std::string> data);
    void append_base64_file(std::filesystem::path p, std::uint64_t file_size);
    /// Appends the file's octets from `offset` as a file_crlf segment of `wire_size` octets.
    void append_file_crlf(std::filesystem::path p, std::uint64_t file_size, std::uint64_t offset,
                          std::uint64_t wire_size);
};

/// The content behind a message, for the library's own code (DKIM signing).
struct message_access {
    static const std::shared_ptr<const message_data>& data(const message& m) noexcept
    {
        return m.data_;
    }
};

/// When message::from_wire_file reads a file whole instead of streaming its body.
struct wire_file_limits {
    std::uint64_t whole = 1 << 20;  ///< files of at most this many octets
    std::uint64_t header = 1 << 20; ///< header sections (made CRLF) longer than this
};
/// message::from_wire_file with other limits (for tests).
result<message> from_wire_file(const std::filesystem::path& path, diagnostics& diag,
                               const wire_file_limits& limits, const from_wire_options& opts = {});

/// Line breaks made CRLF a piece at a time: the pieces' outputs joined, then finish(), equal
/// to_crlf_lines() of the pieces joined (every CRLF, bare LF and bare CR becomes CRLF; a CRLF
/// split between two pieces stays one line break).
class crlf_stream {
public:
    /// Appends `in` with its line breaks as CRLF to `out`.
    void append(std::string& out, std::string_view in);
    /// Appends the final CRLF when the output so far doesn't end in one (or is empty).
    void finish(std::string& out);

private:
    bool after_cr_ = false;  // the last octet read was CR: an LF next is part of its break
    bool ends_crlf_ = false; // the output so far ends in CRLF
};

/// Reads a file in chunks at given offsets, for the segments that are written from a file.
class file_chunks {
public:
    file_chunks() = default;
    file_chunks(const file_chunks&) = delete;
    file_chunks& operator=(const file_chunks&) = delete;
    ~file_chunks() { close(); }

    /// Opens `p` for reading. error::file_unreadable when it can't be opened or isn't a file.
    error_code open(const std::filesystem::path& p);
    bool is_open() const noexcept { return fd_ >= 0; }
    /// The size the file had when it was opened.
    std::uint64_t size() const noexcept { return size_; }
    /// Reads `n` octets at `offset` (which the file must hold): the view stays valid until the
    /// next read. error::file_unreadable on a read error, error::file_changed when the file
    /// ends before them.
    std::string_view read(std::uint64_t offset, std::size_t n, error_code& ec);
    void close() noexcept;

private:
    int fd_ = -1;
    std::uint64_t size_ = 0;
    std::string raw_;
};

} // namespace mailroom::mime::detail

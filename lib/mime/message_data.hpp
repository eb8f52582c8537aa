// Private: the immutable content behind mime::message.
#pragma once

#include <mailroom/envelope.hpp>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace mailroom::mime::detail {

/// One stretch of the wire form.
struct segment {
    enum class kind {
        bytes,         ///< `text` as it is, or `*data` when `data` is set
        base64_memory, ///< `data` in base64 lines, encoded while writing
        base64_file,   ///< the file at `path` (of `file_size` octets) in base64 lines
    };
    kind k = kind::bytes;
    std::string text;
    std::shared_ptr<const std::string> data;
    std::filesystem::path path;
    std::uint64_t file_size = 0;
    std::uint64_t size = 0; ///< octets this segment contributes to the wire form
};

struct message_data {
    envelope env;
    std::string message_id;
    std::vector<segment> segments;
    std::uint64_t size = 0;

    /// Appends literal bytes, merging with a preceding literal segment.
    void append_bytes(std::string_view s);
    /// Appends literal bytes held elsewhere (a builder's prepared body, a message's bytes): a
    /// large string becomes its own segment, not copied; a small one is merged like the above.
    void append_shared(std::shared_ptr<const std::string> s);
    void append_base64(std::shared_ptr<const std::string> data);
    void append_base64_file(std::filesystem::path p, std::uint64_t file_size);
};

} // namespace mailroom::mime::detail

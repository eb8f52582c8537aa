#include <mailroom/mime/message_builder.hpp>

#include <algorithm>
#include <array>
#include <cctype>

namespace mailroom::mime {

namespace {

struct entry {
    std::string_view ext;
    std::string_view type;
};

// Common types as registered with IANA; sorted by extension for binary search.
constexpr std::array<entry, 62> table{{
    {"7z", "application/x-7z-compressed"},
    {"aac", "audio/aac"},
    {"avif", "image/avif"},
    {"bmp", "image/bmp"},
    {"bz2", "application/x-bzip2"},
    {"css", "text/css"},
    {"csv", "text/csv"},
    {"doc", "application/msword"},
    {"docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
    {"eml", "message/rfc822"},
    {"eot", "application/vnd.ms-fontobject"},
    {"epub", "application/epub+zip"},
    {"flac", "audio/flac"},
    {"gif", "image/gif"},
    {"gz", "application/gzip"},
    {"heic", "image/heic"},
    {"htm", "text/html"},
    {"html", "text/html"},
    {"ico", "image/vnd.microsoft.icon"},
    {"ics", "text/calendar"},
    {"jpeg", "image/jpeg"},
    {"jpg", "image/jpeg"},
    {"js", "text/javascript"},
    {"json", "application/json"},
    {"m4a", "audio/mp4"},
    {"md", "text/markdown"},
    {"mid", "audio/midi"},
    {"mov", "video/quicktime"},
    {"mp3", "audio/mpeg"},
    {"mp4", "video/mp4"},
    {"mpeg", "video/mpeg"},
    {"odp", "application/vnd.oasis.opendocument.presentation"},
    {"ods", "application/vnd.oasis.opendocument.spreadsheet"},
    {"odt", "application/vnd.oasis.opendocument.text"},
    {"oga", "audio/ogg"},
    {"ogg", "audio/ogg"},
    {"ogv", "video/ogg"},
    {"otf", "font/otf"},
    {"pdf", "application/pdf"},
    {"png", "image/png"},
    {"ppt", "application/vnd.ms-powerpoint"},
    {"pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"},
    {"rar", "application/vnd.rar"},
    {"rtf", "application/rtf"},
    {"svg", "image/svg+xml"},
    {"tar", "application/x-tar"},
    {"tif", "image/tiff"},
    {"tiff", "image/tiff"},
    {"ttf", "font/ttf"},
    {"txt", "text/plain"},
    {"vcf", "text/vcard"},
    {"wav", "audio/wav"},
    {"weba", "audio/webm"},
    {"webm", "video/webm"},
    {"webp", "image/webp"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"xls", "application/vnd.ms-excel"},
    {"xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
    {"xml", "application/xml"},
    {"zip", "application/zip"},
    {"zst", "application/zstd"},
}};

static_assert(std::is_sorted(table.begin(), table.end(),
                             [](const entry& a, const entry& b) { return a.ext < b.ext; }));

} // namespace

std::string_view media_type_for(std::string_view filename) noexcept
{
    constexpr std::string_view fallback = "application/octet-stream";
    const std::size_t dot = filename.rfind('.');
    if (dot == std::string_view::npos || filename.size() - dot - 1 > 8)
        return fallback;
    char ext[9] = {};
    std::size_t n = 0;
    for (char c : filename.substr(dot + 1))
        ext[n++] = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const std::string_view key(ext, n);
    auto it = std::lower_bound(table.begin(), table.end(), key,
                               [](const entry& e, std::string_view k) { return e.ext < k; });
    return it != table.end() && it->ext == key ? it->type : fallback;
}

} // namespace mailroom::mime

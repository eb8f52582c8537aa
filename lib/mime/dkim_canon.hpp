// Private: the pure pieces of DKIM signing (RFC 6376): header fields split and canonicalized,
// the body canonicalized a chunk at a time, the signed-field list, the folded signature field.
#pragma once

#include <mailroom/mime/dkim.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mailroom::mime::detail {

/// One header field as written: `raw` from its name to its final CRLF, continuation lines
/// included; `name` without the white space before the colon.
struct header_field {
    std::string_view name;
    std::string_view raw;
};

/// The fields of a header section (which ends with the last field's CRLF, without the empty
/// line). A line starting with white space continues the field before it.
std::vector<header_field> split_fields(std::string_view header);

/// Appends `field` canonicalized (RFC 6376 §3.4.1 simple, §3.4.2 relaxed), CRLF included
/// unless `drop_crlf` (the DKIM-Signature field itself is hashed without it).
void canonicalize_header(std::string& out, std::string_view field, dkim_canonicalization c,
                         bool drop_crlf = false);

/// The body canonicalized a chunk at a time (RFC 6376 §3.4.3 simple, §3.4.4 relaxed): the
/// outputs of feed() joined, then finish(), equal the canonical form of the chunks joined.
/// Empty lines at the end are held back until a line with content follows them.
class body_canonicalizer {
public:
    explicit body_canonicalizer(dkim_canonicalization c) noexcept
        : relaxed_(c == dkim_canonicalization::relaxed)
    {
    }
    /// Appends the canonical form of `in` (as far as it is known) to `out`.
    void feed(std::string& out, std::string_view in);
    /// Appends what the end of the body adds: a CRLF ending a last line without one; for
    /// simple, a CRLF for an empty body.
    void finish(std::string& out);

private:
    void flush_line_start(std::string& out);

    bool relaxed_;
    bool cr_ = false;               // the last octet was a CR not yet known to start a CRLF
    bool line_content_ = false;     // the current line has content written (relaxed: not only WSP)
    bool wsp_ = false;              // relaxed: white space seen and not yet written
    bool any_ = false;              // anything written at all
    std::uint64_t empty_lines_ = 0; // empty lines held back
};

/// The `h=` list for `names` (empty: default_dkim_headers()) over `fields`: each name once per
/// field of that name, From once more (oversigned, or once when there is none).
std::vector<std::string> signed_field_names(std::span<const header_field> fields,
                                            std::span<const std::string> names);

/// The fields to hash, in `h=` order: for each name the last instance not yet taken (RFC 6376
/// §5.4.2); an oversigned name with no instance left adds nothing.
std::vector<std::string_view> select_fields(std::span<const header_field> fields,
                                            std::span<const std::string> h);

/// Lays out a DKIM-Signature field folded at 78 columns: `tags` (each `name=value`) in order,
/// then `b=`. Returns the field up to and including `b=` (what is signed, after
/// canonicalization); signature_tail() adds the folded signature and the CRLF.
class signature_field {
public:
    signature_field();
    /// Adds `tag=value;`. A value with ':' separators (h=) may be broken after any ':'; a value
    /// of base64 (bh=) is kept whole.
    void add(std::string_view tag, std::string_view value);
    /// Adds `b=` and returns the field so far: what is hashed.
    const std::string& head();
    /// The whole field: the head, `b64` folded, CRLF.
    std::string finish(std::string_view b64) const;

private:
    void put(std::string_view piece, bool space_before);
    std::string text_;
    std::size_t column_ = 0;
};

/// True when `name` is a DNS name for d= or s=: labels of letters, digits, '-' and '_', 1 to
/// 63 octets, separated by dots, at most 253 octets.
bool is_dkim_dns_name(std::string_view name) noexcept;

} // namespace mailroom::mime::detail

// mailroom::mime::dkim_signer: DKIM signatures (RFC 6376) with rsa-sha256 and ed25519-sha256
// (RFC 8463).
#pragma once

#include <mailroom/error.hpp>
#include <mailroom/mime/message.hpp>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mailroom::mime {

namespace detail {
struct dkim_key;
} // namespace detail

/// How the header fields or the body are prepared before they are hashed (RFC 6376 §3.4).
enum class dkim_canonicalization {
    /// White space runs folded to one space, trailing white space and empty lines at the end
    /// dropped, header names lowercased: survives relays that rewrap or re-space.
    relaxed,
    /// The octets as written, but for empty lines at the end of the body: any change breaks it.
    simple,
};

/// The signing algorithm, taken from the key: an RSA key signs rsa-sha256, an Ed25519 key
/// ed25519-sha256.
enum class dkim_algorithm {
    rsa_sha256,     ///< RFC 6376; RSA keys of at least 1024 bits (RFC 8301), 2048 recommended
    ed25519_sha256, ///< RFC 8463: Ed25519 over the SHA-256 of the signed data
};

/// The header fields signed when dkim_options::headers is empty, each only where the message has
/// it (signing an absent field would break the signature when a relay adds one): From
/// (oversigned), To, Cc, Subject, Date, Message-ID, Reply-To, MIME-Version, Content-Type,
/// Content-Transfer-Encoding, List-Unsubscribe, List-Unsubscribe-Post, In-Reply-To,
/// References.
MAILROOM_API std::span<const std::string_view> default_dkim_headers() noexcept;

/// What a signature says besides the key: the signing domain and selector, the
/// canonicalizations, the header fields, the expiry.
struct dkim_options {
    /// The signing domain (`d=`), an ASCII DNS name (an IDN in its A-label form).
    std::string domain{};
    /// The selector (`s=`): the key's public half is published at
    /// `SELECTOR._domainkey.DOMAIN`.
    std::string selector{};
    /// How header fields are canonicalized (the first half of `c=`).
    dkim_canonicalization header_canonicalization = dkim_canonicalization::relaxed;
    /// How the body is canonicalized (the second half of `c=`).
    dkim_canonicalization body_canonicalization = dkim_canonicalization::relaxed;
    /// The header fields to sign, by name (case-insensitive); empty for
    /// default_dkim_headers(). As with the default, a name is signed once per instance the
    /// message has and not at all when it has none, and From is always signed, once more than
    /// it appears (oversigned), so that no From can be added.
    std::vector<std::string> headers{};
    /// When set, the signature expires this long after it is made (`x=`).
    std::optional<std::chrono::seconds> expire_after{};
};

/// Signs messages with one DKIM key. Built once from the key (the key is parsed and kept), then
/// used for any number of messages: cheap to copy, and safe to use from several threads at
/// once.
///
/// A signature covers the header fields dkim_options names and a hash of the body as it is
/// written (CRLF line ends, the transfer encodings applied). It is added as a DKIM-Signature
/// field at the top of the message, folded at 78 columns; `l=` is never used, `t=` is always
/// set. message::size() of a signed message counts the signature.
class MAILROOM_API dkim_signer {
public:
    /// A signer for the PEM private key `pem` (PKCS#8 `PRIVATE KEY`, or `RSA PRIVATE KEY`).
    /// Errors: error::invalid_dkim_key (not a PEM private key, encrypted, neither RSA nor
    /// Ed25519, RSA under 1024 bits; diag.detail says which), error::invalid_dkim_options (a
    /// domain or selector that isn't a DNS name, a header name that isn't a field name).
    static result<dkim_signer> from_pem(std::string_view pem, dkim_options opts, diagnostics& diag);
    /// from_pem for the key in `key_file` (at most 64 KiB). Also error::file_unreadable when
    /// the file can't be read (diag.detail names it).
    static result<dkim_signer> load(const std::filesystem::path& key_file, dkim_options opts,
                                    diagnostics& diag);

    /// rsa_sha256 or ed25519_sha256, from the key.
    dkim_algorithm algorithm() const noexcept;
    /// The options the signer was made with.
    const dkim_options& options() const noexcept;
    /// Bits of the key: the RSA modulus size, or 256 for Ed25519.
    int key_bits() const noexcept;
    /// The DNS TXT record that publishes the public key at
    /// `SELECTOR._domainkey.DOMAIN`, for example `v=DKIM1; k=ed25519; p=11qYAYKx...`.
    std::string dns_record() const;

    /// The message with a DKIM-Signature field added at the top, signed now. Errors:
    /// error::dkim_signing_failed (no header section), and those of writing the message
    /// (error::file_unreadable, error::file_changed), whose body is read once to be hashed.
    result<message> sign(const message& m, diagnostics& diag) const;
    /// sign() with the signing time given (`t=`).
    result<message> sign(const message& m, std::chrono::system_clock::time_point now,
                         diagnostics& diag) const;

private:
    friend MAILROOM_API result<message> dkim_sign(const message&, std::span<const dkim_signer>,
                                                  std::chrono::system_clock::time_point,
                                                  diagnostics&);
    explicit dkim_signer(std::shared_ptr<const detail::dkim_key> k) noexcept;
    std::shared_ptr<const detail::dkim_key> key_;
};

/// The message with one DKIM-Signature per signer, made at `now`, added at the top in the order
/// given; each signs the message's own fields, not the other signatures. The body is hashed once
/// per body canonicalization, however many signers there are: signing with an RSA and an Ed25519
/// key, as RFC 8463 advises, costs one pass over the body. Errors: as dkim_signer::sign().
MAILROOM_API result<message> dkim_sign(const message& m, std::span<const dkim_signer> signers,
                                       std::chrono::system_clock::time_point now,
                                       diagnostics& diag);

} // namespace mailroom::mime

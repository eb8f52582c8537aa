// DKIM signing (RFC 6376) with rsa-sha256 and ed25519-sha256 (RFC 8463), on OpenSSL's EVP.

#include <mailroom/mime/dkim.hpp>

#include "dkim_canon.hpp"
#include "message_data.hpp"

#include "detail/base64.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <iterator>
#include <optional>

namespace mailroom::mime {

namespace detail {

struct pkey_free {
    void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
};
struct md_ctx_free {
    void operator()(EVP_MD_CTX* p) const noexcept { EVP_MD_CTX_free(p); }
};
using md_ctx_ptr = std::unique_ptr<EVP_MD_CTX, md_ctx_free>;

struct dkim_key {
    std::unique_ptr<EVP_PKEY, pkey_free> pkey;
    dkim_algorithm algorithm = dkim_algorithm::rsa_sha256;
    int bits = 0;
    dkim_options options;
};

namespace {

// SHA-256 over data fed in pieces.
class sha256 {
public:
    sha256()
        : ctx_(EVP_MD_CTX_new())
    {
        if (!ctx_ || EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1)
            ok_ = false;
    }
    void update(std::string_view s)
    {
        if (ok_ && !s.empty() && EVP_DigestUpdate(ctx_.get(), s.data(), s.size()) != 1)
            ok_ = false;
    }
    std::optional<std::array<unsigned char, 32>> final()
    {
        std::array<unsigned char, 32> out{};
        unsigned int n = 0;
        if (!ok_ || EVP_DigestFinal_ex(ctx_.get(), out.data(), &n) != 1 || n != out.size())
            return std::nullopt;
        return out;
    }

private:
    md_ctx_ptr ctx_;
    bool ok_ = true;
};

std::string b64(std::string_view raw)
{
    std::string out;
    mailroom::detail::base64_append(out, raw);
    return out;
}

std::string_view as_view(const unsigned char* p, std::size_t n)
{
    return {reinterpret_cast<const char*>(p), n};
}

// One body hash per canonicalization, fed as the body is read.
struct body_hash {
    explicit body_hash(dkim_canonicalization c)
        : canon(c)
        , canonicalizer(c)
    {
        buf.reserve(16 * 1024);
    }
    // Canonicalized 8 KiB at a time and hashed as soon as 8 KiB are ready, so the buffer stays
    // small whatever the chunk (a chunk of 86 KiB made it grow past glibc's trim threshold,
    // and every message paid for the heap shrinking and growing again).
    void feed(std::string_view in)
    {
        constexpr std::size_t piece = 8 * 1024;
        while (!in.empty()) {
            const std::size_t n = std::min(piece, in.size());
            canonicalizer.feed(buf, in.substr(0, n));
            in.remove_prefix(n);
            if (buf.size() >= piece) {
                hash.update(buf);
                buf.clear();
            }
        }
    }
    std::optional<std::string> finish()
    {
        canonicalizer.finish(buf);
        hash.update(buf);
        buf.clear();
        auto h = hash.final();
        if (!h)
            return std::nullopt;
        return b64(as_view(h->data(), h->size()));
    }
    dkim_canonicalization canon;
    body_canonicalizer canonicalizer;
    sha256 hash;
    std::string buf;
};

// 'path', built by appending: GCC 12 at -O3 warns falsely (-Wrestrict) on "'" + std::string.
std::string quoted(const std::filesystem::path& p)
{
    std::string out = "'";
    out.append(p.string());
    out.push_back('\'');
    return out;
}

std::string_view canon_name(dkim_canonicalization c)
{
    return c == dkim_canonicalization::relaxed ? "relaxed" : "simple";
}

bool is_field_name(std::string_view n)
{
    return !n.empty() && n.size() <= 76 &&
           std::all_of(n.begin(), n.end(), [](char c) { return c > ' ' && c < 127 && c != ':'; });
}

std::optional<std::string> sign_data(const dkim_key& k, std::string_view data)
{
    md_ctx_ptr ctx(EVP_MD_CTX_new());
    if (!ctx)
        return std::nullopt;
    std::array<unsigned char, 32> digest{};
    std::string_view input = data;
    const EVP_MD* md = EVP_sha256();
    if (k.algorithm == dkim_algorithm::ed25519_sha256) {
        // RFC 8463 §3: PureEdDSA over the SHA-256 of the data.
        sha256 h;
        h.update(data);
        auto d = h.final();
        if (!d)
            return std::nullopt;
        digest = *d;
        input = as_view(digest.data(), digest.size());
        md = nullptr;
    }
    if (EVP_DigestSignInit(ctx.get(), nullptr, md, nullptr, k.pkey.get()) != 1)
        return std::nullopt;
    std::size_t n = 0;
    const auto* in = reinterpret_cast<const unsigned char*>(input.data());
    if (EVP_DigestSign(ctx.get(), nullptr, &n, in, input.size()) != 1)
        return std::nullopt;
    std::string sig(n, '\0');
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &n, in,
                       input.size()) != 1)
        return std::nullopt;
    sig.resize(n);
    return b64(sig);
}

// The header section of `m` (up to the last field's CRLF) and its body, hashed once per body
// canonicalization in `hashes`, read a chunk at a time as the message is written.
error_code read_message(const message& m, std::string& header, std::vector<body_hash>& hashes)
{
    message::reader r = m.open();
    error_code ec;
    bool in_body = false;
    for (;;) {
        std::string_view chunk = r.next(ec);
        if (ec)
            return ec;
        if (chunk.empty())
            break;
        if (!in_body) {
            // Only the header section is copied; the body is hashed from the reader's chunks.
            std::size_t start = std::string::npos; // of the CRLF CRLF, in header + chunk
            if (header.empty() && chunk.starts_with("\r\n")) {
                start = 0;
            } else {
                // The CRLF CRLF may start in the octets read before: look across the seam.
                const std::size_t k = std::min<std::size_t>(3, header.size());
                const std::string seam =
                    header.substr(header.size() - k) + std::string(chunk.substr(0, 3));
                if (auto p = seam.find("\r\n\r\n"); p != std::string::npos)
                    start = header.size() - k + p;
                else if (auto q = chunk.find("\r\n\r\n"); q != std::string_view::npos)
                    start = header.size() + q;
            }
            if (start == std::string::npos) {
                header += chunk;
                continue;
            }
            // The header section ends with its last field's CRLF; the body follows the empty
            // line. (start 0: no field at all, an empty header section.)
            const std::size_t before = header.size();
            const std::size_t header_end = start == 0 ? 0 : start + 2;
            const std::size_t body_start = start + 2 + (start == 0 ? 0 : 2);
            if (header_end >= before)
                header += chunk.substr(0, header_end - before);
            else
                header.resize(header_end);
            for (body_hash& h : hashes)
                h.feed(chunk.substr(body_start - before));
            in_body = true;
            continue;
        }
        for (body_hash& h : hashes)
            h.feed(chunk);
    }
    // A message of header fields only, without the empty line, has an empty body.
    return {};
}

} // namespace
} // namespace detail

std::span<const std::string_view> default_dkim_headers() noexcept
{
    static constexpr std::array<std::string_view, 14> names = {
        "from",
        "to",
        "cc",
        "subject",
        "date",
        "message-id",
        "reply-to",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "list-unsubscribe",
        "list-unsubscribe-post",
        "in-reply-to",
        "references",
    };
    return names;
}

dkim_signer::dkim_signer(std::shared_ptr<const detail::dkim_key> k) noexcept
    : key_(std::move(k))
{
}

result<dkim_signer> dkim_signer::from_pem(std::string_view pem, dkim_options opts,
                                          diagnostics& diag)
{
    diag.clear();
    auto fail = [&](error e, std::string_view field, std::string detail) {
        ERR_clear_error();
        diag.field = std::string(field);
        diag.detail = std::move(detail);
        return result<dkim_signer>(make_error_code(e));
    };
    if (!detail::is_dkim_dns_name(opts.domain))
        return fail(error::invalid_dkim_options, "domain",
                    "not a DNS name: letters, digits, '-', '_' and dots");
    if (!detail::is_dkim_dns_name(opts.selector))
        return fail(error::invalid_dkim_options, "selector",
                    "not a DNS name: letters, digits, '-', '_' and dots");
    for (std::string& n : opts.headers) {
        if (!detail::is_field_name(n))
            return fail(error::invalid_dkim_options, "headers", "not a header field name");
        for (char& c : n)
            c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    if (pem.find("ENCRYPTED") != std::string_view::npos)
        return fail(error::invalid_dkim_key, "key",
                    "the key is encrypted; give it unencrypted (PKCS#8 PRIVATE KEY)");
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(
        BIO_new_mem_buf(pem.data(), static_cast<int>(std::min<std::size_t>(pem.size(), 1 << 20))),
        &BIO_free);
    if (!bio)
        return fail(error::invalid_dkim_key, "key", "out of memory");
    // No passphrase callback: an encrypted key fails rather than prompting.
    pem_password_cb* no_password = [](char*, int, int, void*) {
        return 0;
    };
    auto k = std::make_shared<detail::dkim_key>();
    k->pkey.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_password, nullptr));
    if (!k->pkey)
        return fail(error::invalid_dkim_key, "key",
                    "not a PEM private key (PRIVATE KEY or RSA PRIVATE KEY)");
    switch (EVP_PKEY_get_base_id(k->pkey.get())) {
    case EVP_PKEY_RSA:
        k->algorithm = dkim_algorithm::rsa_sha256;
        k->bits = EVP_PKEY_get_bits(k->pkey.get());
        if (k->bits < 1024)
            return fail(error::invalid_dkim_key, "key",
                        "an RSA key of " + std::to_string(k->bits) +
                            " bits; DKIM needs at least 1024 (RFC 8301), 2048 recommended");
        break;
    case EVP_PKEY_ED25519:
        k->algorithm = dkim_algorithm::ed25519_sha256;
        k->bits = 256;
        break;
    default:
        return fail(error::invalid_dkim_key, "key",
                    "neither an RSA nor an Ed25519 key (DKIM signs with rsa-sha256 or "
                    "ed25519-sha256)");
    }
    k->options = std::move(opts);
    return dkim_signer(std::move(k));
}

result<dkim_signer> dkim_signer::load(const std::filesystem::path& key_file, dkim_options opts,
                                      diagnostics& diag)
{
    diag.clear();
    std::ifstream in(key_file, std::ios::binary);
    std::string pem;
    constexpr std::size_t cap = 64 * 1024;
    if (in) {
        pem.resize(cap + 1);
        in.read(pem.data(), static_cast<std::streamsize>(pem.size()));
        pem.resize(static_cast<std::size_t>(in.gcount()));
    }
    if (!in && !in.eof()) {
        diag.field = "key";
        diag.detail = "cannot read ";
        diag.detail += detail::quoted(key_file);
        return make_error_code(error::file_unreadable);
    }
    if (pem.size() > cap) {
        diag.field = "key";
        diag.detail = detail::quoted(key_file);
        diag.detail += " is larger than a key (64 KiB)";
        return make_error_code(error::invalid_dkim_key);
    }
    auto r = from_pem(pem, std::move(opts), diag);
    std::fill(pem.begin(), pem.end(), '\0');
    if (!r && !diag.detail.empty())
        diag.detail = detail::quoted(key_file).append(": ").append(diag.detail);
    return r;
}

dkim_algorithm dkim_signer::algorithm() const noexcept
{
    return key_->algorithm;
}
const dkim_options& dkim_signer::options() const noexcept
{
    return key_->options;
}
int dkim_signer::key_bits() const noexcept
{
    return key_->bits;
}

std::string dkim_signer::dns_record() const
{
    std::string raw;
    if (key_->algorithm == dkim_algorithm::ed25519_sha256) {
        // RFC 8463 §4.2: the bare 32-octet public key.
        std::size_t n = 32;
        raw.resize(n);
        EVP_PKEY_get_raw_public_key(key_->pkey.get(), reinterpret_cast<unsigned char*>(raw.data()),
                                    &n);
        raw.resize(n);
        return "v=DKIM1; k=ed25519; p=" + detail::b64(raw);
    }
    // RFC 6376 §3.6.1: the SubjectPublicKeyInfo in DER.
    unsigned char* der = nullptr;
    const int n = i2d_PUBKEY(key_->pkey.get(), &der);
    if (n > 0)
        raw.assign(reinterpret_cast<const char*>(der), static_cast<std::size_t>(n));
    OPENSSL_free(der);
    return "v=DKIM1; k=rsa; p=" + detail::b64(raw);
}

result<message> dkim_signer::sign(const message& m, diagnostics& diag) const
{
    return sign(m, std::chrono::system_clock::now(), diag);
}

result<message> dkim_signer::sign(const message& m, std::chrono::system_clock::time_point now,
                                  diagnostics& diag) const
{
    return dkim_sign(m, std::span(this, 1), now, diag);
}

result<message> dkim_sign(const message& m, std::span<const dkim_signer> signers,
                          std::chrono::system_clock::time_point now, diagnostics& diag)
{
    diag.clear();
    if (signers.empty())
        return m;
    std::vector<detail::body_hash> hashes;
    for (const dkim_signer& s : signers) {
        const auto c = s.key_->options.body_canonicalization;
        if (std::none_of(hashes.begin(), hashes.end(),
                         [&](const detail::body_hash& h) { return h.canon == c; }))
            hashes.emplace_back(c);
    }
    std::string header;
    if (auto ec = detail::read_message(m, header, hashes)) {
        diag.field = "DKIM-Signature";
        diag.detail = "reading the message to sign it";
        return ec;
    }
    if (header.empty() || !header.ends_with("\r\n")) {
        diag.field = "DKIM-Signature";
        diag.detail = "the message has no header section to sign";
        return make_error_code(error::dkim_signing_failed);
    }
    std::vector<std::string> bh;
    for (detail::body_hash& h : hashes) {
        auto v = h.finish();
        if (!v) {
            diag.field = "DKIM-Signature";
            diag.detail = "SHA-256 failed";
            return make_error_code(error::dkim_signing_failed);
        }
        bh.push_back(std::move(*v));
    }
    const auto fields = detail::split_fields(header);
    const auto t = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
    std::string added;
    for (const dkim_signer& s : signers) {
        const detail::dkim_key& k = *s.key_;
        const dkim_options& o = k.options;
        const auto h = detail::signed_field_names(fields, o.headers);
        std::string data;
        for (std::string_view f : detail::select_fields(fields, h))
            detail::canonicalize_header(data, f, o.header_canonicalization);
        std::string h_value;
        for (const std::string& n : h) {
            if (!h_value.empty())
                h_value += ':';
            h_value += n;
        }
        const std::size_t which =
            static_cast<std::size_t>(std::find_if(hashes.begin(), hashes.end(),
                                                  [&](const detail::body_hash& b) {
                                                      return b.canon == o.body_canonicalization;
                                                  }) -
                                     hashes.begin());
        detail::signature_field f;
        f.add("v", "1");
        f.add("a", k.algorithm == dkim_algorithm::rsa_sha256 ? "rsa-sha256" : "ed25519-sha256");
        f.add("c", std::string(detail::canon_name(o.header_canonicalization)) + "/" +
                       std::string(detail::canon_name(o.body_canonicalization)));
        f.add("d", o.domain);
        f.add("s", o.selector);
        f.add("t", std::to_string(t));
        if (o.expire_after)
            f.add("x", std::to_string(t + o.expire_after->count()));
        f.add("h", h_value);
        f.add("bh", bh[which]);
        detail::canonicalize_header(data, f.head(), o.header_canonicalization, true);
        auto sig = detail::sign_data(k, data);
        if (!sig) {
            ERR_clear_error();
            diag.field = "DKIM-Signature";
            diag.detail = "OpenSSL could not sign";
            return make_error_code(error::dkim_signing_failed);
        }
        added += f.finish(*sig);
    }
    const auto& src = *detail::message_access::data(m);
    auto d = std::make_shared<detail::message_data>();
    d->env = src.env;
    d->message_id = src.message_id;
    d->append_bytes(added);
    d->segments.insert(d->segments.end(), src.segments.begin(), src.segments.end());
    d->size += src.size;
    return message(std::move(d));
}

} // namespace mailroom::mime

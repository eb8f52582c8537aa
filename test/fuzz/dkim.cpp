// Fuzz target: DKIM canonicalization and signing.
//
// Input: a seed byte for how the body is cut, then the bytes. Invariants:
// - the body canonicalized piece by piece (cut at places the seed picks) equals the body
//   canonicalized in one piece, for relaxed and simple;
// - relaxed output has no white space before a line end, no run of two, and no empty line at
//   its end; both end in CRLF unless empty (relaxed only), and are CRLF-only when the input is;
// - the header fields split_fields() finds are the input, in order, without a gap;
// - relaxed header canonicalization gives one line, `name:value` CRLF, the name lowercased;
// - any message from_wire accepts can be signed (ed25519 and rsa), the signed wire form is
//   size() octets, starts with the signatures, ends with the unsigned wire form, and every
//   line of the signature fields is at most 78 octets.
#include "fuzz.hpp"

#include "mime/dkim_canon.hpp"

#include <mailroom/mime/dkim.hpp>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <string>

using mailroom::diagnostics;
using mailroom::mime::dkim_canonicalization;
namespace mime = mailroom::mime;

namespace {

std::string canon(std::span<const std::string_view> pieces, dkim_canonicalization c)
{
    mime::detail::body_canonicalizer bc(c);
    std::string out;
    for (std::string_view p : pieces)
        bc.feed(out, p);
    bc.finish(out);
    return out;
}

std::string pem_of(EVP_PKEY* k)
{
    BIO* b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, k, nullptr, nullptr, 0, nullptr, nullptr);
    char* p = nullptr;
    const long n = BIO_get_mem_data(b, &p);
    std::string out(p, static_cast<std::size_t>(n));
    BIO_free(b);
    EVP_PKEY_free(k);
    return out;
}

const std::vector<mime::dkim_signer>& signers()
{
    static const std::vector<mime::dkim_signer> s = [] {
        std::vector<mime::dkim_signer> v;
        for (auto* k : {EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"),
                        EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", std::size_t{1024})}) {
            mime::dkim_options o;
            o.domain = "example.com";
            o.selector = "fuzz";
            o.header_canonicalization =
                v.empty() ? dkim_canonicalization::relaxed : dkim_canonicalization::simple;
            o.body_canonicalization = o.header_canonicalization;
            diagnostics d;
            auto r = mime::dkim_signer::from_pem(pem_of(k), o, d);
            FUZZ_CHECK(r.has_value(), "a generated key is refused");
            v.push_back(*r);
        }
        return v;
    }();
    return s;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    fuzz::input in(data, size);
    const std::uint32_t seed = in.byte();
    const std::string_view bytes = in.rest();
    const std::string_view whole[] = {bytes};
    const auto pieces = fuzz::split(bytes, seed);
    for (auto c : {dkim_canonicalization::relaxed, dkim_canonicalization::simple}) {
        const std::string one = canon(whole, c);
        FUZZ_CHECK(canon(pieces, c) == one, "the body cut in pieces canonicalizes otherwise");
        if (c == dkim_canonicalization::simple || !one.empty())
            FUZZ_CHECK(one.ends_with("\r\n"), "a canonical body doesn't end in CRLF");
        FUZZ_CHECK(!one.ends_with("\r\n\r\n"), "empty lines left at the end");
        if (fuzz::crlf_only(bytes))
            FUZZ_CHECK(fuzz::crlf_only(one), "a CRLF-only body canonicalizes to bare CR or LF");
        if (c == dkim_canonicalization::relaxed) {
            FUZZ_CHECK(one.find(" \r\n") == std::string::npos &&
                           one.find("  ") == std::string::npos &&
                           one.find('\t') == std::string::npos,
                       "relaxed left white space to fold");
        }
    }

    // The header fields cover the input exactly.
    const auto fields = mime::detail::split_fields(bytes);
    std::size_t at = 0;
    for (const auto& f : fields) {
        FUZZ_CHECK(f.raw.data() == bytes.data() + at, "a gap between header fields");
        at += f.raw.size();
        if (f.raw.ends_with("\r\n") && f.raw.find(':') != std::string_view::npos) {
            std::string h;
            mime::detail::canonicalize_header(h, f.raw, dkim_canonicalization::relaxed);
            FUZZ_CHECK(h.ends_with("\r\n"), "a relaxed field without its CRLF");
            const std::string_view body(h.data(), h.size() - 2);
            FUZZ_CHECK(body.find('\n') == std::string_view::npos &&
                           body.find('\r') == std::string_view::npos,
                       "a relaxed field over two lines");
            const std::string_view name = body.substr(0, body.find(':'));
            for (char ch : name)
                FUZZ_CHECK(!(ch >= 'A' && ch <= 'Z'), "an upper-case relaxed field name");
        }
    }
    FUZZ_CHECK(at == bytes.size(), "header fields don't reach the end");

    diagnostics d;
    const auto m = mime::message::from_wire(std::string(bytes), d);
    if (!m)
        return 0;
    const auto plain = m->serialize();
    FUZZ_CHECK(plain.has_value(), "an accepted message can't be written");
    const auto s = mime::dkim_sign(*m, signers(), std::chrono::system_clock::now(), d);
    FUZZ_CHECK(s.has_value(), "an accepted message can't be signed");
    const auto w = s->serialize();
    FUZZ_CHECK(w.has_value() && w->size() == s->size(), "the signed size is not exact");
    FUZZ_CHECK(w->starts_with("DKIM-Signature: v=1; a=ed25519-sha256;"), "no signature on top");
    FUZZ_CHECK(w->ends_with(*plain), "signing changed the message");
    const std::string_view added(w->data(), w->size() - plain->size());
    FUZZ_CHECK(fuzz::crlf_only(added) && fuzz::longest_line(added) <= 78,
               "a signature field line over 78 octets");
    return 0;
}

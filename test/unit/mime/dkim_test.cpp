// DKIM: canonicalization (RFC 6376 §3.4 and its example §3.4.5), streaming body hashes against
// a one-shot reference, field selection, the signature field's layout, keys; and signatures
// made by the library checked by dkimpy, an independent verifier.
#include <mailroom/mime/dkim.hpp>
#include <mailroom/mime/message_builder.hpp>

#include "mime/dkim_canon.hpp"

#include <doctest/doctest.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

using namespace mailroom;
using mime::dkim_canonicalization;
using mime::dkim_options;
using mime::dkim_signer;
using mime::message_builder;

namespace {

constexpr auto relaxed = dkim_canonicalization::relaxed;
constexpr auto simple = dkim_canonicalization::simple;

std::string body_canon(std::string_view in, dkim_canonicalization c,
                       std::vector<std::size_t> cuts = {})
{
    mime::detail::body_canonicalizer bc(c);
    std::string out;
    std::size_t pos = 0;
    for (std::size_t cut : cuts) {
        bc.feed(out, in.substr(pos, cut - pos));
        pos = cut;
    }
    bc.feed(out, in.substr(pos));
    bc.finish(out);
    return out;
}

// The body canonicalizations written from the RFC's words over the whole body at once: lines
// split at CRLF; relaxed: white space runs made one space and dropped at line ends; empty lines
// at the end dropped; every line ends in CRLF; simple: an empty body is one CRLF.
std::string reference(std::string_view in, dkim_canonicalization c)
{
    std::vector<std::string> lines;
    std::size_t pos = 0;
    for (;;) {
        const std::size_t e = in.find("\r\n", pos);
        if (e == std::string_view::npos) {
            if (pos < in.size())
                lines.emplace_back(in.substr(pos));
            break;
        }
        lines.emplace_back(in.substr(pos, e - pos));
        pos = e + 2;
    }
    if (c == relaxed) {
        for (std::string& l : lines) {
            std::string r;
            for (char ch : l) {
                const bool w = ch == ' ' || ch == '\t';
                if (w && !r.empty() && r.back() == ' ')
                    continue;
                r += w ? ' ' : ch;
            }
            while (!r.empty() && r.back() == ' ')
                r.pop_back();
            l = r;
        }
    }
    while (!lines.empty() && lines.back().empty())
        lines.pop_back();
    std::string out;
    for (const std::string& l : lines)
        out += l + "\r\n";
    if (c == simple && out.empty())
        out = "\r\n";
    return out;
}

dkim_options opts(std::string domain, std::string selector)
{
    dkim_options o;
    o.domain = std::move(domain);
    o.selector = std::move(selector);
    return o;
}

std::string key_pem(const char* type, std::size_t bits = 0)
{
    EVP_PKEY* k = bits ? EVP_PKEY_Q_keygen(nullptr, nullptr, type, bits)
                       : EVP_PKEY_Q_keygen(nullptr, nullptr, type);
    REQUIRE(k != nullptr);
    BIO* b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, k, nullptr, nullptr, 0, nullptr, nullptr);
    char* p = nullptr;
    const long n = BIO_get_mem_data(b, &p);
    std::string out(p, static_cast<std::size_t>(n));
    BIO_free(b);
    EVP_PKEY_free(k);
    return out;
}

const std::string& rsa_pem()
{
    static const std::string k = key_pem("RSA", 2048);
    return k;
}
const std::string& ed_pem()
{
    static const std::string k = key_pem("ED25519");
    return k;
}

dkim_signer signer(const std::string& pem, dkim_options o = {})
{
    if (o.domain.empty())
        o.domain = "example.com";
    if (o.selector.empty())
        o.selector = "sel";
    diagnostics d;
    auto s = dkim_signer::from_pem(pem, std::move(o), d);
    REQUIRE_MESSAGE(s.has_value(), d.to_string());
    return *s;
}

std::string wire(const mime::message& m)
{
    auto s = m.serialize();
    REQUIRE(s.has_value());
    CHECK(s->size() == m.size());
    return *s;
}

// Runs dkimpy (Debian's python3-dkim, with python3-nacl for ed25519) on `msg`, the public
// keys given by selector instead of DNS. Returns dkimpy's verdict for every signature, in
// order, as "1"/"0" characters.
std::string dkimpy_verify(const std::string& msg,
                          const std::vector<std::pair<std::string, std::string>>& records)
{
    const auto dir =
        std::filesystem::temp_directory_path() / ("mailroom-dkim-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "msg.eml", std::ios::binary) << msg;
    std::ostringstream py;
    py << "import dkim, sys\n"
          "recs = {}\n";
    for (const auto& [sel, rec] : records)
        py << "recs[b'" << sel << "._domainkey.example.com.'] = b'" << rec << "'\n";
    py << "def dns(name, timeout=5):\n"
          "    return recs.get(name if name.endswith(b'.') else name + b'.')\n"
          "m = open(sys.argv[1], 'rb').read()\n"
          "d = dkim.DKIM(m)\n"
          "n = len([h for h in d.headers if h[0].lower() == b'dkim-signature'])\n"
          "def ok(i):\n"
          "    try:\n"
          "        return d.verify(idx=i, dnsfunc=dns)\n"
          "    except dkim.ValidationError:\n"
          "        return False\n"
          "print(''.join('1' if ok(i) else '0' for i in range(n)))\n";
    std::ofstream(dir / "verify.py") << py.str();
    const std::string cmd = "/usr/bin/python3 " + (dir / "verify.py").string() + " " +
                            (dir / "msg.eml").string() + " 2>&1";
    std::string out;
    if (FILE* f = ::popen(cmd.c_str(), "r")) {
        char buf[4096];
        std::size_t n;
        while ((n = std::fread(buf, 1, sizeof buf, f)) > 0)
            out.append(buf, n);
        ::pclose(f);
    }
    std::filesystem::remove_all(dir);
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r'))
        out.pop_back();
    return out;
}

} // namespace

TEST_CASE("dkim.canon: the example of RFC 6376 §3.4.5")
{
    const std::string header = "A: X\r\nB : Y\t\r\n\tZ  \r\n";
    const std::string body = " C \r\nD \t E\r\n\r\n\r\n";
    std::string h;
    for (const auto& f : mime::detail::split_fields(header))
        mime::detail::canonicalize_header(h, f.raw, relaxed);
    CHECK(h == "a:X\r\nb:Y Z\r\n");
    h.clear();
    for (const auto& f : mime::detail::split_fields(header))
        mime::detail::canonicalize_header(h, f.raw, simple);
    CHECK(h == header);
    CHECK(body_canon(body, relaxed) == " C\r\nD E\r\n");
    CHECK(body_canon(body, simple) == " C \r\nD \t E\r\n");
}

TEST_CASE("dkim.canon: body edge cases")
{
    CHECK(body_canon("", simple) == "\r\n");
    CHECK(body_canon("", relaxed) == "");
    CHECK(body_canon("\r\n\r\n", simple) == "\r\n");
    CHECK(body_canon("\r\n \t \r\n", relaxed) == "");
    CHECK(body_canon("abc", simple) == "abc\r\n");
    CHECK(body_canon("abc  ", relaxed) == "abc\r\n");
    CHECK(body_canon("a\r\n\r\nb\r\n\r\n", simple) == "a\r\n\r\nb\r\n");
    CHECK(body_canon(".dot\r\n..two\r\n", simple) == ".dot\r\n..two\r\n");
    CHECK(body_canon("\tlead\r\n", relaxed) == " lead\r\n");
    CHECK(body_canon("bare\rcr\r\n", relaxed) == "bare\rcr\r\n");
    CHECK(body_canon("x\r", simple) == "x\r\r\n");
    CHECK(body_canon(" \r\n", simple) == " \r\n");
}

TEST_CASE("dkim.canon: relaxed header fields")
{
    std::string h;
    mime::detail::canonicalize_header(h, "SUBJect \t:  Hello \r\n   wide\t world  \r\n", relaxed);
    CHECK(h == "subject:Hello wide world\r\n");
    h.clear();
    mime::detail::canonicalize_header(h, "X-Empty:\r\n", relaxed);
    CHECK(h == "x-empty:\r\n");
    h.clear();
    mime::detail::canonicalize_header(h, "DKIM-Signature: v=1;\r\n\tb=", relaxed, true);
    CHECK(h == "dkim-signature:v=1; b=");
}

TEST_CASE("dkim.canon: the body hashed a chunk at a time equals the one-shot hash")
{
    std::mt19937 rng(20261208);
    const std::string alphabet = "ab \t\r\n.";
    for (int round = 0; round < 3000; ++round) {
        std::string body;
        const std::size_t n = rng() % 40;
        for (std::size_t i = 0; i < n; ++i)
            body += alphabet[rng() % alphabet.size()];
        for (auto c : {relaxed, simple}) {
            const std::string want = reference(body, c);
            REQUIRE_MESSAGE(body_canon(body, c) == want, "body: ", body);
            // Every single cut, and a few random multi-cuts.
            for (std::size_t cut = 0; cut <= body.size(); ++cut)
                REQUIRE(body_canon(body, c, {cut}) == want);
            std::vector<std::size_t> cuts;
            for (std::size_t i = 0; i <= body.size(); ++i)
                if (rng() % 3 == 0)
                    cuts.push_back(i);
            REQUIRE(body_canon(body, c, cuts) == want);
        }
    }
}

TEST_CASE("dkim.fields: signed names follow the message, From oversigned")
{
    const std::string header = "From: a@example.com\r\nTo: b@example.net\r\nTo: c@example.net\r\n"
                               "Subject: s\r\nX-Other: o\r\n";
    const auto fields = mime::detail::split_fields(header);
    REQUIRE(fields.size() == 5);
    const auto h = mime::detail::signed_field_names(fields, {});
    CHECK(h == std::vector<std::string>{"from", "from", "to", "to", "subject"});
    // The last instance first (RFC 6376 §5.4.2); the oversigned From selects nothing.
    const auto sel = mime::detail::select_fields(fields, h);
    REQUIRE(sel.size() == 4);
    CHECK(sel[1] == "To: c@example.net\r\n");
    CHECK(sel[2] == "To: b@example.net\r\n");
    const std::vector<std::string> mine = {"x-other", "Subject"};
    CHECK(mime::detail::signed_field_names(fields, mine) ==
          std::vector<std::string>{"from", "from", "x-other", "subject"});
}

TEST_CASE("dkim.keys: what can and can't sign")
{
    diagnostics d;
    auto rsa = dkim_signer::from_pem(rsa_pem(), opts("example.com", "s1"), d);
    REQUIRE(rsa.has_value());
    CHECK(rsa->algorithm() == mime::dkim_algorithm::rsa_sha256);
    CHECK(rsa->key_bits() == 2048);
    CHECK(rsa->dns_record().starts_with("v=DKIM1; k=rsa; p=MIIBIjAN"));
    auto ed = dkim_signer::from_pem(ed_pem(), opts("example.com", "s2"), d);
    REQUIRE(ed.has_value());
    CHECK(ed->algorithm() == mime::dkim_algorithm::ed25519_sha256);
    CHECK(ed->dns_record().size() == std::string("v=DKIM1; k=ed25519; p=").size() + 44);

    CHECK(dkim_signer::from_pem(key_pem("RSA", 512), opts("example.com", "s"), d).error() ==
          error::invalid_dkim_key);
    CHECK(d.detail.find("512") != std::string::npos);
    CHECK(dkim_signer::from_pem("not a key", opts("example.com", "s"), d).error() ==
          error::invalid_dkim_key);
    CHECK(dkim_signer::from_pem(rsa_pem(), opts("exa mple.com", "s"), d).error() ==
          error::invalid_dkim_options);
    CHECK(d.field == "domain");
    CHECK(dkim_signer::from_pem(rsa_pem(), opts("example.com", ""), d).error() ==
          error::invalid_dkim_options);
    dkim_options bad = opts("example.com", "s");
    bad.headers = {"Sub:ject"};
    CHECK(dkim_signer::from_pem(rsa_pem(), bad, d).error() == error::invalid_dkim_options);
    CHECK(dkim_signer::load("/nonexistent/key.pem", opts("example.com", "s"), d).error() ==
          error::file_unreadable);
    // The key material never reaches the diagnostics.
    CHECK(d.to_string().find("PRIVATE") == std::string::npos);
}

TEST_CASE("dkim.keys: an EC key is refused by type")
{
    EVP_PKEY* k = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
    REQUIRE(k != nullptr);
    BIO* b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, k, nullptr, nullptr, 0, nullptr, nullptr);
    char* p = nullptr;
    const long n = BIO_get_mem_data(b, &p);
    const std::string pem(p, static_cast<std::size_t>(n));
    BIO_free(b);
    EVP_PKEY_free(k);
    diagnostics d;
    CHECK(dkim_signer::from_pem(pem, opts("example.com", "s"), d).error() ==
          error::invalid_dkim_key);
    CHECK(d.detail.find("neither an RSA nor an Ed25519") != std::string::npos);
}

TEST_CASE("dkim.sign: the signature field")
{
    message_builder b;
    b.from("Alice <alice@example.com>")
        .to("bob@example.net")
        .subject("Hello")
        .text("Hi Bob\n")
        .list_unsubscribe("https://example.com/u?x=1")
        .list_unsubscribe_one_click();
    dkim_options o = opts("example.com", "sel");
    o.expire_after = std::chrono::hours(24 * 7);
    b.dkim(signer(rsa_pem(), o));
    diagnostics d;
    auto m = b.build(d);
    REQUIRE_MESSAGE(m.has_value(), d.to_string());
    const std::string w = wire(*m);
    REQUIRE(w.starts_with("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com;"));
    const std::string field = w.substr(0, w.find("\r\nDate:") + 2);
    std::istringstream lines(field);
    for (std::string line; std::getline(lines, line);) {
        if (!line.empty() && line.back() == '\r')
            line.pop_back();
        CHECK(line.size() <= 78);
    }
    // The tags, unfolded: "; t=" and ";t=" alike.
    std::string unfolded;
    for (char c : field)
        if (c != '\r' && c != '\n' && c != '\t' && c != ' ')
            unfolded += c;
    CHECK(unfolded.find(";l=") == std::string::npos);
    CHECK(unfolded.find(";t=") != std::string::npos);
    CHECK(unfolded.find(";x=") != std::string::npos);
    CHECK(unfolded.find("h=from:from:to:subject:date:message-id:mime-version:content-type:"
                        "content-transfer-encoding:list-unsubscribe:list-unsubscribe-post;") !=
          std::string::npos);
    const auto h = unfolded.find(";h=");
    REQUIRE(h != std::string::npos);
    CHECK(unfolded.substr(h, unfolded.find(';', h + 1) - h).find("cc") == std::string::npos);
}

TEST_CASE("dkim.verify: dkimpy verifies the library's signatures")
{
    const dkim_signer rsa = signer(rsa_pem(), opts("example.com", "rsa"));
    const dkim_signer ed = signer(ed_pem(), opts("example.com", "ed"));
    dkim_options simple_opts = opts("example.com", "rsas");
    simple_opts.header_canonicalization = simple;
    simple_opts.body_canonicalization = simple;
    const dkim_signer rsa_simple = signer(rsa_pem(), simple_opts);
    const std::vector<std::pair<std::string, std::string>> records = {
        {"rsa", rsa.dns_record()}, {"ed", ed.dns_record()}, {"rsas", rsa.dns_record()}};

    const auto dir = std::filesystem::temp_directory_path() /
                     ("mailroom-dkim-att-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    {
        std::ofstream f(dir / "big.bin", std::ios::binary);
        std::mt19937 rng(7);
        for (int i = 0; i < 3 * 1024 * 1024; ++i)
            f.put(static_cast<char>(rng()));
    }
    // One template builder, its messages signed by three signers.
    message_builder b;
    b.from("Zoë Ünïcode <zoe@example.com>")
        .to("bob@example.net")
        .cc("Carol <carol@example.org>")
        .subject("Grüße — a long subject line that will certainly need folding when it is "
                 "encoded as several encoded words")
        .text("Line one\n.dot line\n\ttabbed   spaced   \n\n\n")
        .html("<p>Grüße</p>")
        .attach({"notes.txt", "text/plain", "a\r\nb\r\n", {}, {}})
        .attach_file(dir / "big.bin")
        .dkim(rsa)
        .dkim(ed)
        .dkim(rsa_simple);
    diagnostics d;
    for (int i = 0; i < 2; ++i) {
        auto m = b.build(d);
        REQUIRE_MESSAGE(m.has_value(), d.to_string());
        const std::string w = wire(*m);
        CHECK(dkimpy_verify(w, records) == "111");
        // A changed body octet, then a changed header: every signature fails.
        std::string tampered = w;
        const auto pos = tampered.find(".dot line");
        REQUIRE(pos != std::string::npos);
        tampered[pos + 1] = 'D';
        CHECK(dkimpy_verify(tampered, records) == "000");
        tampered = w;
        const auto to = tampered.find("To: bob@");
        REQUIRE(to != std::string::npos);
        tampered.replace(to, 8, "To: rob@");
        CHECK(dkimpy_verify(tampered, records) == "000");
        // A second From added on top breaks the oversigned From.
        CHECK(dkimpy_verify("From: mallory@example.com\r\n" + w, records) == "000");
    }
    std::filesystem::remove_all(dir);

    // A prepared message, and an empty body.
    diagnostics d2;
    auto raw =
        mime::message::from_wire("From: a@example.com\nTo: b@example.net\nSubject: x\n\n", d2);
    REQUIRE(raw.has_value());
    const std::vector<dkim_signer> both = {rsa, ed};
    auto signed_raw = mime::dkim_sign(*raw, both, std::chrono::system_clock::now(), d2);
    REQUIRE_MESSAGE(signed_raw.has_value(), d2.to_string());
    CHECK(signed_raw->size() > raw->size());
    CHECK(signed_raw->envelope().recipients.size() == 1);
    CHECK(dkimpy_verify(wire(*signed_raw), records) == "11");
    auto s2 = rsa_simple.sign(*raw, d2);
    REQUIRE(s2.has_value());
    CHECK(dkimpy_verify(wire(*s2), records) == "1");
}

TEST_CASE("dkim.verify: the empty line anywhere across the writer's 64 KiB chunks")
{
    // The header section is copied until the empty line, which may begin in one chunk and end
    // in the next: put it at each offset around the first chunk's end.
    const dkim_signer ed = signer(ed_pem(), opts("example.com", "ed"));
    const std::vector<std::pair<std::string, std::string>> records = {{"ed", ed.dns_record()}};
    for (std::size_t j = 0; j <= 4; ++j) {
        std::string head = "From: a@example.com\r\nTo: b@example.net\r\n";
        const std::size_t target = 64 * 1024 - j; // where "\r\n\r\n" starts
        while (head.size() + 160 < target)
            head += "X-Pad: " + std::string(70, 'p') + "\r\n";
        head += "X-Last: " + std::string(target - head.size() - 8, 'q') + "\r\n";
        REQUIRE(head.size() == target + 2);
        const std::string msg = head + "\r\nbody line\r\n";
        diagnostics d;
        auto m = mime::message::from_wire(msg, d);
        REQUIRE_MESSAGE(m.has_value(), d.to_string());
        auto s = ed.sign(*m, d);
        REQUIRE_MESSAGE(s.has_value(), d.to_string());
        CHECK_MESSAGE(dkimpy_verify(wire(*s), records) == "1", "empty line at ", target);
    }
}

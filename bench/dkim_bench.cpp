// DKIM benchmark: what a DKIM signature adds to the cost of a message. Not a test: it asserts no
// timings, it only prints, one machine-readable line per workload, microseconds per message:
//
//   mailroom SIZE-none build_us=...                  build() + serialize(), no signature
//   mailroom SIZE-ALG build_sign_us=... sign_us=...  the same builder with dkim(signer); and
//                                                    dkim_signer::sign() of a message read once
//                                                    with message::from_wire (the --eml path)
//
// for SIZE 2k (a text body; 2 KiB on the wire) and 100k (a text body and a 72 KiB in-memory
// attachment, base64; 100 KiB on the wire), and ALG rsa (rsa-sha256, a 2048-bit key), ed25519
// (ed25519-sha256) and both (one signature of each, RFC 8463 §6). The builder is made once and
// used as a template, as `mailroom bulk` does: each message is build() and serialize(), so the
// body is prepared once and the figure holds the per-message work (headers, layout, encoding,
// body hash, signature). The signing overhead is build_sign_us - build_us.
//
// The keys are made with OpenSSL's EVP at start, unless --dir DIR holds key-rsa.pem and
// key-ed25519.pem already. With --dir, it also writes there, for bench/dkim_python.py (Python's
// dkimpy signing the same messages) and for checking the signatures: the keys, their DNS
// records (dns-rsa.txt, dns-ed25519.txt), and per size the unsigned wire form (msg-SIZE.eml)
// and one signed by each key (signed-SIZE-ALG.eml). bench/run_dkim.py runs both and compares.
//
// Usage: dkim_bench [--seconds S] [--dir DIR] [--only SIZE-ALG]...

#include <mailroom/mime/dkim.hpp>
#include <mailroom/mime/message_builder.hpp>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

namespace mime = mailroom::mime;
namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

volatile std::uint64_t sink = 0; // keeps results observable

[[noreturn]] void die(const std::string& what)
{
    std::fprintf(stderr, "dkim_bench: %s\n", what.c_str());
    std::exit(1);
}

// Text lines of about 60 characters, `octets` of them in all (LF line ends; the builder makes
// them CRLF).
std::string text_body(std::size_t octets)
{
    std::string s;
    char line[128];
    for (int i = 0; s.size() < octets; ++i) {
        std::snprintf(line, sizeof line,
                      "Line %03d: the quick brown fox jumps over the lazy dog.\n", i);
        s += line;
    }
    return s;
}

// Pseudo-random octets (xorshift64), so the attachment is not trivially compressible.
std::string payload(std::size_t n)
{
    std::string s(n, '\0');
    std::uint64_t x = 0x9E3779B97F4A7C15ull;
    for (std::size_t i = 0; i < n; i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::memcpy(s.data() + i, &x, std::min<std::size_t>(8, n - i));
    }
    return s;
}

mime::message_builder make_builder(std::string_view size)
{
    mime::message_builder b;
    b.from(std::string("Alice Example <alice@example.com>"))
        .to(std::string("Bob Example <bob@example.org>"))
        .subject("Quarterly report: DKIM benchmark " + std::string(size))
        .message_id_domain("example.com");
    if (size == "2k") {
        b.text(text_body(1600));
    } else {
        b.text(text_body(2000));
        mime::attachment a;
        a.filename = "data.bin";
        a.content_type = "application/octet-stream";
        a.data = payload(72 * 1024);
        b.attach(std::move(a));
    }
    return b;
}

std::string serialize(const mime::message_builder& b)
{
    mailroom::diagnostics diag;
    auto m = b.build(diag);
    if (!m)
        die("build failed: " + diag.to_string());
    auto bytes = m->serialize();
    if (!bytes)
        die("serialize failed");
    return std::move(*bytes);
}

struct timing {
    std::uint64_t iterations = 0;
    double seconds = 0;
    double us_per_call() const { return seconds * 1e6 / static_cast<double>(iterations); }
};

// Runs `f` untimed for a warm-up, then for at least `seconds`, checking the clock every call (a
// call takes microseconds or more).
template <class F> timing run_for(double seconds, F&& f)
{
    const double warm = std::min(0.5, std::max(0.1, seconds / 4));
    auto start = clock_type::now();
    do
        f();
    while (std::chrono::duration<double>(clock_type::now() - start).count() < warm);
    timing t;
    start = clock_type::now();
    do {
        f();
        ++t.iterations;
        t.seconds = std::chrono::duration<double>(clock_type::now() - start).count();
    } while (t.seconds < seconds);
    return t;
}

std::string read_file(const fs::path& p)
{
    std::ifstream in(p, std::ios::binary);
    if (!in)
        die("can't read " + p.string());
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const fs::path& p, std::string_view data)
{
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
    if (!out)
        die("can't write " + p.string());
}

// A new private key as PKCS#8 PEM: "RSA" with 2048 bits, or "ED25519".
std::string generate_pem(const char* type)
{
    EVP_PKEY* key = std::strcmp(type, "RSA") == 0
                        ? EVP_PKEY_Q_keygen(nullptr, nullptr, type, static_cast<size_t>(2048))
                        : EVP_PKEY_Q_keygen(nullptr, nullptr, type);
    if (key == nullptr)
        die(std::string("key generation failed: ") + type);
    BIO* bio = BIO_new(BIO_s_mem());
    std::string pem;
    if (bio != nullptr &&
        PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr) == 1) {
        char* data = nullptr;
        const long n = BIO_get_mem_data(bio, &data);
        pem.assign(data, static_cast<std::size_t>(n));
    }
    BIO_free(bio);
    EVP_PKEY_free(key);
    if (pem.empty())
        die(std::string("writing the key failed: ") + type);
    return pem;
}

// The key `name` (rsa or ed25519) from DIR/key-NAME.pem when there is one, else a new one
// (written there when DIR is given).
mime::dkim_signer signer_for(const fs::path& dir, const std::string& name)
{
    const fs::path file = dir.empty() ? fs::path() : dir / ("key-" + name + ".pem");
    std::string pem;
    if (!file.empty() && fs::exists(file)) {
        pem = read_file(file);
    } else {
        pem = generate_pem(name == "rsa" ? "RSA" : "ED25519");
        if (!file.empty())
            write_file(file, pem);
    }
    mailroom::diagnostics diag;
    mime::dkim_options opts;
    opts.domain = "example.com";
    opts.selector = name;
    auto s = mime::dkim_signer::from_pem(pem, std::move(opts), diag);
    if (!s)
        die("dkim_signer::from_pem(" + name + "): " + diag.to_string());
    if (!dir.empty())
        write_file(dir / ("dns-" + name + ".txt"), s->dns_record() + "\n");
    return *s;
}

} // namespace

int main(int argc, char** argv)
{
    double seconds = 1;
    fs::path dir;
    std::set<std::string> only;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        if (a == "--seconds" && i + 1 < argc) {
            char* end = nullptr;
            seconds = std::strtod(argv[++i], &end);
            if (*end != '\0' || !(seconds > 0))
                die("--seconds needs a positive number");
        } else if (a == "--dir" && i + 1 < argc) {
            dir = argv[++i];
        } else if (a == "--only" && i + 1 < argc) {
            only.insert(argv[++i]);
        } else {
            std::fprintf(stderr, "usage: dkim_bench [--seconds S] [--dir DIR] [--only "
                                 "SIZE-ALG]...  (SIZE 2k|100k, ALG none|rsa|ed25519|both)\n");
            return 2;
        }
    }
    if (!dir.empty())
        fs::create_directories(dir);
    const mime::dkim_signer rsa = signer_for(dir, "rsa");
    const mime::dkim_signer ed = signer_for(dir, "ed25519");
    if (rsa.algorithm() != mime::dkim_algorithm::rsa_sha256 || rsa.key_bits() != 2048)
        die("the RSA key is not a 2048-bit rsa-sha256 key");
    if (ed.algorithm() != mime::dkim_algorithm::ed25519_sha256)
        die("the Ed25519 key is not an ed25519-sha256 key");

    struct alg {
        const char* name;
        std::vector<mime::dkim_signer> signers;
    };
    const alg algs[] = {{"none", {}}, {"rsa", {rsa}}, {"ed25519", {ed}}, {"both", {rsa, ed}}};
    for (const char* size : {"2k", "100k"}) {
        const mime::message_builder plain = make_builder(size);
        const std::string unsigned_wire = serialize(plain);
        if (!dir.empty())
            write_file(dir / ("msg-" + std::string(size) + ".eml"), unsigned_wire);
        mailroom::diagnostics diag;
        auto from_wire = mime::message::from_wire(unsigned_wire, diag);
        if (!from_wire)
            die("from_wire: " + diag.to_string());
        for (const alg& a : algs) {
            const std::string label = std::string(size) + "-" + a.name;
            if (!only.empty() && only.count(label) == 0)
                continue;
            mime::message_builder b = plain;
            for (const mime::dkim_signer& s : a.signers)
                b.dkim(s);
            const std::string wire = serialize(b);
            const timing built = run_for(seconds, [&] { sink = sink + serialize(b).size(); });
            if (a.signers.empty()) {
                std::printf("mailroom %s build_us=%.3f bytes=%zu\n", label.c_str(),
                            built.us_per_call(), wire.size());
                std::fflush(stdout);
                continue;
            }
            if (!dir.empty())
                write_file(dir / ("signed-" + label + ".eml"), wire);
            const auto now = std::chrono::system_clock::now();
            const timing signed_wire = run_for(seconds, [&] {
                mailroom::diagnostics d;
                auto m = mime::dkim_sign(*from_wire, a.signers, now, d);
                if (!m)
                    die("dkim_sign: " + d.to_string());
                sink = sink + m->size();
            });
            std::printf("mailroom %s build_sign_us=%.3f sign_us=%.3f bytes=%zu\n", label.c_str(),
                        built.us_per_call(), signed_wire.us_per_call(), wire.size());
            std::fflush(stdout);
        }
    }
    return 0;
}

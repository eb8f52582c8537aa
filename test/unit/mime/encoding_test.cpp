#include "mime/encoding.hpp"

#include "detail/base64.hpp"
#include "detail/utf8.hpp"

#include <doctest/doctest.h>

using namespace mailroom::mime::detail;
using mailroom::detail::base64_append;
using mailroom::detail::base64_lines_append;
using mailroom::detail::base64_lines_size;
using mailroom::detail::base64_size;
using mailroom::detail::has_control;
using mailroom::detail::is_valid_utf8;

TEST_CASE("base64 of RFC 4648 test vectors")
{
    const std::pair<std::string_view, std::string_view> vectors[] = {
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
    };
    for (auto [in, want] : vectors) {
        std::string out;
        base64_append(out, in);
        CHECK(out == want);
        CHECK(base64_size(in.size()) == want.size());
    }
}

namespace {

// Test-only decoders, written from RFC 2045 independently of the encoders under test.
std::string base64_decode(std::string_view in)
{
    auto val = [](char c) -> int {
        if (c >= 'A' && c <= 'Z')
            return c - 'A';
        if (c >= 'a' && c <= 'z')
            return c - 'a' + 26;
        if (c >= '0' && c <= '9')
            return c - '0' + 52;
        return c == '+' ? 62 : c == '/' ? 63 : -1;
    };
    std::string out;
    unsigned buf = 0;
    int bits = 0;
    for (char c : in) {
        int v = val(c);
        if (v < 0)
            continue;
        buf = (buf << 6) | static_cast<unsigned>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((buf >> bits) & 0xFF);
        }
    }
    return out;
}

std::string qp_decode(std::string_view in)
{
    std::string out;
    for (std::size_t i = 0; i < in.size(); ++i) {
        if (in[i] != '=') {
            out += in[i];
        } else if (in.substr(i + 1, 2) == "\r\n") {
            i += 2;
        } else {
            out += static_cast<char>(std::stoi(std::string(in.substr(i + 1, 2)), nullptr, 16));
            i += 2;
        }
    }
    return out;
}

std::vector<std::string_view> lines_of(std::string_view s)
{
    std::vector<std::string_view> v;
    std::size_t pos = 0;
    while (pos < s.size()) {
        std::size_t e = s.find("\r\n", pos);
        if (e == std::string_view::npos)
            e = s.size();
        v.push_back(s.substr(pos, e - pos));
        pos = e + 2;
    }
    return v;
}

// Every CR is followed by LF and every LF preceded by CR.
bool only_crlf(std::string_view s)
{
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\r' && (i + 1 == s.size() || s[i + 1] != '\n'))
            return false;
        if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
            return false;
    }
    return true;
}

std::string all_bytes(std::size_t n)
{
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i)
        s[i] = static_cast<char>((i * 7 + i / 256) & 0xFF);
    return s;
}

} // namespace

TEST_SUITE("mime.encoding")
{
    TEST_CASE("base64 lines: 76 characters, exact size, round trip")
    {
        for (std::size_t n : {0u, 1u, 2u, 3u, 56u, 57u, 58u, 114u, 115u, 1000u, 65536u}) {
            const std::string data = all_bytes(n);
            std::string out;
            base64_lines_append(out, data);
            CHECK(out.size() == base64_lines_size(n));
            CHECK(base64_decode(out) == data);
            for (auto line : lines_of(out))
                CHECK(line.size() <= 76);
            CHECK(only_crlf(out));
        }
    }

    TEST_CASE("base64 lines encoded in 57-octet multiples join with CRLF")
    {
        const std::string data = all_bytes(57 * 10 + 13);
        std::string whole, pieces;
        base64_lines_append(whole, data);
        base64_lines_append(pieces, std::string_view(data).substr(0, 57 * 4));
        pieces += "\r\n";
        base64_lines_append(pieces, std::string_view(data).substr(57 * 4));
        CHECK(pieces == whole);
    }

    TEST_CASE("line ends are normalised to CRLF and a final CRLF is added")
    {
        CHECK(to_crlf_lines("a\nb\rc\r\nd") == "a\r\nb\r\nc\r\nd\r\n");
        CHECK(to_crlf_lines("") == "\r\n");
        CHECK(to_crlf_lines("x\r\n") == "x\r\n");
        CHECK(to_crlf_lines("\r\r\n\n") == "\r\n\r\n\r\n");
    }

    TEST_CASE("quoted-printable: soft breaks, trailing white space, 8-bit octets")
    {
        const std::string texts[] = {
            to_crlf_lines(std::string(300, 'x')),
            to_crlf_lines("trailing space \nand tab\t\nend"),
            to_crlf_lines("Grüße aus Köln = 1 €"),
            to_crlf_lines(std::string(75, 'a') + "=" + std::string(80, 'b')),
            to_crlf_lines(".leading dot\nFrom the start"),
            to_crlf_lines(all_bytes(2000)),
        };
        for (const auto& t : texts) {
            std::string out;
            quoted_printable_append(out, t);
            CHECK(qp_decode(out) == t);
            for (auto line : lines_of(out)) {
                CHECK(line.size() <= 76);
                CHECK(std::all_of(line.begin(), line.end(),
                                  [](char c) { return c == '\t' || (c >= 0x20 && c < 0x7F); }));
                if (!line.empty()) {
                    CHECK(line.back() != ' ');
                    CHECK(line.back() != '\t');
                }
            }
        }
        std::string out;
        quoted_printable_append(out, "a=b\r\n");
        CHECK(out == "a=3Db\r\n");
    }

    TEST_CASE("normalize_text finds long lines, 8-bit octets and controls")
    {
        text_stats st;
        normalize_text("abc\n" + std::string(100, 'x') + "\nä\x01", st);
        CHECK(st.longest_line == 100);
        CHECK(st.non_ascii == 2);
        CHECK(st.controls == 1);
    }

    TEST_CASE("encoded-words: at most 75 characters, never split inside a character")
    {
        const std::string texts[] = {
            "Grüße aus Köln",
            "日本語のテキストはとても長くなる可能性があります。日本語のテキストはとても長くなる可能"
            "性があります。",
            "emoji 😀😃😄😁😆😅😂🤣 and more "
            "😀😃😄😁😆😅😂🤣😀😃😄😁😆😅😂🤣",
            "=?utf-8?q?=0D=0ABcc:_evil@example.com?=",
        };
        for (const auto& t : texts) {
            std::string rebuilt;
            encoded_words(t, 40, [&](std::string_view w) {
                CHECK(w.size() <= max_encoded_word);
                REQUIRE(w.size() > 12);
                CHECK(w.substr(0, 8) == "=?UTF-8?");
                const char kind = w[8];
                std::string_view payload = w.substr(10, w.size() - 12);
                std::string decoded;
                if (kind == 'B') {
                    decoded = base64_decode(payload);
                } else {
                    std::string q(payload);
                    std::replace(q.begin(), q.end(), '_', ' ');
                    decoded = qp_decode(q);
                }
                // Each word decodes to whole characters on its own.
                CHECK(is_valid_utf8(decoded));
                rebuilt += decoded;
            });
            CHECK(rebuilt == t);
        }
    }

    TEST_CASE("encoded-words: the first word respects the room left on the line")
    {
        std::vector<std::size_t> sizes;
        encoded_words(std::string(200, 'x') + "ü", 30,
                      [&](std::string_view w) { sizes.push_back(w.size()); });
        REQUIRE(sizes.size() > 2);
        CHECK(sizes[0] <= 30);
        CHECK(sizes[1] <= 75);
    }

    TEST_CASE("RFC 2231 percent-encoding keeps only attribute-chars")
    {
        std::string out;
        rfc2231_append(out, "a b'c%d*e\"ü.pdf");
        CHECK(out == "a%20b%27c%25d%2Ae%22%C3%BC.pdf");
    }

    TEST_CASE("UTF-8 validation and controls")
    {
        CHECK(is_valid_utf8("plain ascii"));
        CHECK(is_valid_utf8("Grüße 日本 😀"));
        CHECK_FALSE(is_valid_utf8("\xc3"));
        CHECK_FALSE(is_valid_utf8("\xe0\x80\xaf"));
        CHECK_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));
        CHECK(has_control("a\rb"));
        CHECK(has_control("a\x85"
                          "b") == false); // a lone continuation octet is not C1
        CHECK(has_control("a\xc2\x85"
                          "b")); // U+0085 NEL
        CHECK_FALSE(has_control("Grüße"));
    }
}

TEST_SUITE("mime.encoding")
{
    TEST_CASE("word-at-a-time fast paths agree with a byte-by-byte reference")
    {
        // Every special octet at every position of a 24-octet line.
        for (unsigned char special : {0x00, 0x01, 0x09, 0x1F, 0x7F, 0x80, 0xC3, 0xFF}) {
            for (std::size_t pos = 0; pos < 24; ++pos) {
                std::string line(24, 'a');
                line[pos] = static_cast<char>(special);
                std::size_t non_ascii = 0, controls = 0;
                for (unsigned char c : line) {
                    non_ascii += c >= 0x80;
                    controls += (c < 0x20 && c != '\t') || c == 0x7F;
                }
                text_stats st;
                normalize_text(line + "\r\n" + std::string(30, 'b') + "\r\n", st);
                CHECK(st.non_ascii == non_ascii);
                CHECK(st.controls == controls);
                CHECK(st.longest_line == 30);
                CHECK(is_valid_utf8(line) == (special < 0x80));
            }
        }
        CHECK(to_crlf_lines(std::string(20, 'x') + "\n" + std::string(3, 'y')) ==
              std::string(20, 'x') + "\r\n" + std::string(3, 'y') + "\r\n");
    }
}

TEST_SUITE("mime.encoding")
{
    TEST_CASE("normalize_text agrees with a byte-by-byte reference on random text")
    {
        // The reference: every CR LF, bare CR and bare LF becomes CRLF; a final CRLF is added.
        auto reference = [](std::string_view in) {
            std::string out;
            for (std::size_t i = 0; i < in.size(); ++i) {
                if (in[i] == '\r' || in[i] == '\n') {
                    out += "\r\n";
                    if (in[i] == '\r' && i + 1 < in.size() && in[i + 1] == '\n')
                        ++i;
                } else {
                    out += in[i];
                }
            }
            if (out.size() < 2 || out.substr(out.size() - 2) != "\r\n")
                out += "\r\n";
            return out;
        };
        // Mostly printable, with line breaks of every kind, tabs, controls and 8-bit octets;
        // short lines make the output outgrow its first allocation.
        const char specials[] = {'\r', '\n', '\t', '\x01', '\x7f', '\xc3', '\xa4', '.'};
        std::uint32_t seed = 12345;
        auto next = [&] {
            return seed = seed * 1664525u + 1013904223u;
        };
        for (int round = 0; round < 2000; ++round) {
            std::string in(next() % 300, 'a');
            const std::uint32_t density = 1 + next() % 40;
            for (char& c : in)
                c = next() % density == 0 ? specials[next() % sizeof specials]
                                          : static_cast<char>(' ' + next() % 95);
            text_stats st;
            const std::string out = normalize_text(in, st);
            REQUIRE(out == reference(in));
            // What the reference output holds, counted an octet at a time.
            std::size_t non_ascii = 0, controls = 0, longest = 0, line = 0;
            for (std::size_t i = 0; i < out.size(); ++i) {
                const auto c = static_cast<unsigned char>(out[i]);
                if (c == '\r') {
                    longest = std::max(longest, line);
                    line = 0;
                    ++i; // its LF
                    continue;
                }
                ++line;
                non_ascii += c >= 0x80;
                controls += (c < 0x20 && c != '\t') || c == 0x7F;
            }
            CHECK(st.non_ascii == non_ascii);
            CHECK(st.controls == controls);
            CHECK(st.longest_line == longest);
        }
        // Twenty empty lines: twice the input's length, beyond the first allocation.
        std::string crlf20;
        for (int i = 0; i < 20; ++i)
            crlf20 += "\r\n";
        text_stats st;
        CHECK(normalize_text(std::string(20, '\n'), st) == crlf20);
        CHECK(st.longest_line == 0);
    }
}

#include "smtp/dot_stuffer.hpp"

#include <doctest/doctest.h>

#include <random>

using mailroom::error;
using mailroom::error_code;
using mailroom::smtp::detail::dot_stuffer;
using mode = dot_stuffer::dot_stuffing;

namespace {

// An independent, obviously-correct model: split into lines at CRLF, CR or LF, then write
// each line with a stuffed dot and CRLF, then the terminator.
std::string model(std::string_view in, mode m = mode::on)
{
    std::vector<std::string> lines;
    std::string cur;
    bool open = false; // a line has started and not ended
    for (std::size_t i = 0; i < in.size(); ++i) {
        if (in[i] == '\r' || in[i] == '\n') {
            lines.push_back(cur);
            cur.clear();
            open = false;
            if (in[i] == '\r' && i + 1 < in.size() && in[i + 1] == '\n')
                ++i;
        } else {
            cur += in[i];
            open = true;
        }
    }
    if (open)
        lines.push_back(cur);
    std::string out;
    for (const auto& l : lines) {
        if (m == mode::on && !l.empty() && l[0] == '.')
            out += '.';
        out += l;
        out += "\r\n";
    }
    if (m == mode::on)
        out += ".\r\n";
    return out;
}

std::string stuff_pieces(const std::vector<std::string_view>& pieces, mode m = mode::on)
{
    dot_stuffer d(m);
    std::string out;
    for (auto p : pieces) {
        error_code ec = d.feed(p, out);
        REQUIRE_FALSE(ec);
    }
    d.finish(out);
    return out;
}

std::string stuff(std::string_view in, mode m = mode::on)
{
    return stuff_pieces({in}, m);
}

void check_splits(std::string_view in, mode m = mode::on)
{
    CAPTURE(in);
    const std::string whole = stuff(in, m);
    CHECK(whole == model(in, m));
    for (std::size_t i = 0; i <= in.size(); ++i) {
        CAPTURE(i);
        REQUIRE(stuff_pieces({in.substr(0, i), in.substr(i)}, m) == whole);
    }
    if (in.size() <= 40) {
        for (std::size_t i = 0; i <= in.size(); ++i) {
            for (std::size_t j = i; j <= in.size(); ++j) {
                CAPTURE(i);
                CAPTURE(j);
                REQUIRE(stuff_pieces({in.substr(0, i), in.substr(i, j - i), in.substr(j)}, m) ==
                        whole);
            }
        }
    }
    std::vector<std::string_view> bytes;
    for (std::size_t i = 0; i < in.size(); ++i)
        bytes.push_back(in.substr(i, 1));
    REQUIRE(stuff_pieces(bytes, m) == whole);
}

// What a receiver sees: the output has only CRLF line ends, and the only line that is a lone
// "." is the last one.
void check_wire_invariants(std::string_view wire)
{
    for (std::size_t i = 0; i < wire.size(); ++i) {
        if (wire[i] == '\r')
            REQUIRE((i + 1 < wire.size() && wire[i + 1] == '\n'));
        if (wire[i] == '\n')
            REQUIRE((i > 0 && wire[i - 1] == '\r'));
    }
    const std::size_t end = wire.find("\r\n.\r\n");
    if (end != std::string_view::npos)
        CHECK(end + 5 == wire.size());
    else
        CHECK(wire == ".\r\n");
}

} // namespace

TEST_SUITE("smtp.dot_stuffer")
{
    TEST_CASE("basic output")
    {
        CHECK(stuff("") == ".\r\n"); // an empty message
        CHECK(stuff("a") == "a\r\n.\r\n");
        CHECK(stuff("a\r\n") == "a\r\n.\r\n");
        CHECK(stuff("a\r\nb") == "a\r\nb\r\n.\r\n");
        CHECK(stuff("\r\n") == "\r\n.\r\n");
        CHECK(stuff("Subject: x\r\n\r\nbody\r\n") == "Subject: x\r\n\r\nbody\r\n.\r\n");
    }

    TEST_CASE("dots at the start of a line are doubled")
    {
        CHECK(stuff(".") == "..\r\n.\r\n");
        CHECK(stuff("..") == "...\r\n.\r\n");
        CHECK(stuff(".\r\n") == "..\r\n.\r\n");
        CHECK(stuff("a\r\n.\r\nb") == "a\r\n..\r\nb\r\n.\r\n");
        CHECK(stuff(".hidden\r\n..x\r\na.b.\r\n") == "..hidden\r\n...x\r\na.b.\r\n.\r\n");
        CHECK(stuff("x\r\n.") == "x\r\n..\r\n.\r\n");
    }

    TEST_CASE("bare CR and bare LF become CRLF")
    {
        CHECK(stuff("a\nb\n") == "a\r\nb\r\n.\r\n");
        CHECK(stuff("a\rb\r") == "a\r\nb\r\n.\r\n");
        CHECK(stuff("a\r\r\nb") == "a\r\n\r\nb\r\n.\r\n"); // CR, then CRLF
        CHECK(stuff("a\n\rb") == "a\r\n\r\nb\r\n.\r\n");   // LF, then CR
        CHECK(stuff("a\n\nb") == "a\r\n\r\nb\r\n.\r\n");
        CHECK(stuff("\n") == "\r\n.\r\n");
        CHECK(stuff("\r") == "\r\n.\r\n");
    }

    TEST_CASE("SMTP smuggling sequences can't end the data early")
    {
        // Each would end DATA at a receiver that accepts that line end; stuffed, none does.
        CHECK(stuff("a\n.\nb") == "a\r\n..\r\nb\r\n.\r\n");
        CHECK(stuff("a\r.\rb") == "a\r\n..\r\nb\r\n.\r\n");
        CHECK(stuff("a\n.\r\nb") == "a\r\n..\r\nb\r\n.\r\n");
        CHECK(stuff("a\r\n.\nb") == "a\r\n..\r\nb\r\n.\r\n");
        CHECK(stuff("a\r\n.\r\nb") == "a\r\n..\r\nb\r\n.\r\n");
        CHECK(stuff("a\r\n.\rb") == "a\r\n..\r\nb\r\n.\r\n");
        CHECK(stuff("\r\n.\r\n") == "\r\n..\r\n.\r\n");
        CHECK(stuff("\n.\n") == "\r\n..\r\n.\r\n");
        CHECK(stuff("\r.\r") == "\r\n..\r\n.\r\n");
        // A smuggled second transaction stays message text.
        const std::string_view smuggle = "Subject: hi\r\n\r\nbody\n.\r\n"
                                         "MAIL FROM:<evil@example>\r\n"
                                         "RCPT TO:<victim@example>\r\nDATA\r\n";
        const std::string wire = stuff(smuggle);
        check_wire_invariants(wire);
        CHECK(wire.find("\r\n..\r\nMAIL FROM") != std::string::npos);
    }

    TEST_CASE("splitting anywhere gives the same bytes")
    {
        for (std::string_view in : {
                 "",
                 ".",
                 "..",
                 "a",
                 "\r",
                 "\n",
                 "\r\n",
                 "\r\r",
                 "\n\n",
                 "\n\r",
                 ".\r\n.",
                 "a\n.\nb",
                 "a\r.\rb",
                 "a\n.\r\nb",
                 "a\r\n.\r\nb",
                 "\r\n.\r\n",
                 "\r\n.\r",
                 ".\r.\n.\r\n.",
                 "line one\r\n.line two\nline three\r.\r\n..\r\n",
                 "From: a@example.com\r\nSubject: test\r\n\r\nHello\r\n.\r\n..\r\nBye",
             }) {
            check_splits(in);
            check_splits(in, mode::off);
        }
    }

    TEST_CASE("random input matches the model and keeps the wire invariants")
    {
        std::mt19937 rng(4711);
        const std::string_view alphabet = "..\r\r\n\nab ";
        std::uniform_int_distribution<std::size_t> len(0, 200);
        std::uniform_int_distribution<std::size_t> ch(0, alphabet.size() - 1);
        for (int round = 0; round < 500; ++round) {
            std::string in;
            for (std::size_t n = len(rng); n > 0; --n)
                in += alphabet[ch(rng)];
            CAPTURE(in);
            const std::string wire = stuff(in);
            CHECK(wire == model(in));
            check_wire_invariants(wire);
            // Random cuts.
            std::uniform_int_distribution<std::size_t> cut(0, in.size());
            std::size_t a = cut(rng), b = cut(rng);
            if (a > b)
                std::swap(a, b);
            const std::string_view v = in;
            CHECK(stuff_pieces({v.substr(0, a), v.substr(a, b - a), v.substr(b)}) == wire);
        }
    }

    TEST_CASE("line length limit")
    {
        const std::string max(998, 'x');
        CHECK(stuff(max) == max + "\r\n.\r\n");
        CHECK(stuff(max + "\r\n" + max) == max + "\r\n" + max + "\r\n.\r\n");
        // The stuffed dot doesn't count (RFC 5321 §4.5.3.1.6).
        const std::string dotted = "." + std::string(997, 'x');
        CHECK(stuff(dotted) == "." + dotted + "\r\n.\r\n");

        dot_stuffer d;
        std::string out = "kept";
        CHECK(d.feed(max + "x", out) == error::line_too_long);
        CHECK(out == "kept"); // a failed call writes nothing

        // Across pieces.
        dot_stuffer d2;
        out.clear();
        REQUIRE_FALSE(d2.feed("hello\r\n" + std::string(500, 'y'), out));
        const std::size_t before = out.size();
        CHECK(d2.feed(std::string(499, 'y'), out) == error::line_too_long);
        CHECK(out.size() == before);
        // The state is as before the failed call: 498 more fit.
        CHECK_FALSE(d2.feed(std::string(498, 'y') + "\n", out));

        dot_stuffer small(mode::on, 4);
        out.clear();
        CHECK_FALSE(small.feed("abcd\r\nabcd", out));
        CHECK(small.feed("e", out) == error::line_too_long);
        CHECK(error_code(error::line_too_long) == mailroom::condition::invalid_input);
    }

    TEST_CASE("BDAT mode: line ends only")
    {
        CHECK(stuff("", mode::off) == "");
        CHECK(stuff(".", mode::off) == ".\r\n");
        CHECK(stuff("a\n.\nb", mode::off) == "a\r\n.\r\nb\r\n");
        CHECK(stuff("a\r\n", mode::off) == "a\r\n");
    }

    TEST_CASE("reusable after finish")
    {
        dot_stuffer d;
        std::string out;
        REQUIRE_FALSE(d.feed("one\r", out));
        CHECK(d.fed() == 4);
        d.finish(out);
        CHECK(d.fed() == 0);
        REQUIRE_FALSE(d.feed("\n.two", out)); // the LF doesn't pair with the old CR
        d.finish(out);
        CHECK(out == "one\r\n.\r\n\r\n..two\r\n.\r\n");
    }
}

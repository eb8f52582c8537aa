#include <mailroom/mime/message_builder.hpp>

#include "mime/encoding.hpp"
#include "mime/header.hpp"
#include "mime/message_data.hpp"

#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>
#include <random>
#include <unistd.h>

using namespace mailroom;
using mime::message_builder;

namespace {

std::string wire(const message_builder& b)
{
    diagnostics d;
    auto m = b.build(d);
    REQUIRE_MESSAGE(m.has_value(), d.to_string());
    auto s = m->serialize();
    REQUIRE(s);
    CHECK(s->size() == m->size());
    return std::move(*s);
}

message_builder basic()
{
    message_builder b;
    b.from("Alice <alice@example.com>").to("bob@example.net").subject("Hello").text("Hi Bob");
    return b;
}

std::string headers_of(std::string_view w)
{
    return std::string(w.substr(0, w.find("\r\n\r\n") + 2));
}

// RFC 5322 §2.1.1 and §2.2: CRLF only, no line over 998 octets.
void check_wire_form(std::string_view w)
{
    std::size_t line = 0;
    for (std::size_t i = 0; i < w.size(); ++i) {
        if (w[i] == '\r') {
            REQUIRE(i + 1 < w.size());
            CHECK(w[i + 1] == '\n');
            CHECK(line <= 998);
            line = 0;
            ++i;
        } else {
            CHECK(w[i] != '\n');
            ++line;
        }
    }
    CHECK(w.substr(w.size() - 2) == "\r\n");
}

// Removes folding (RFC 5322 §2.2.3): CRLF followed by white space.
std::string unfold(std::string_view h)
{
    std::string out;
    for (std::size_t i = 0; i < h.size(); ++i) {
        if (h.substr(i, 3) == "\r\n " || h.substr(i, 3) == "\r\n\t") {
            i += 1;
            continue;
        }
        out += h[i];
    }
    return out;
}

error build_error(const message_builder& b, std::string* field = nullptr)
{
    diagnostics d;
    auto m = b.build(d);
    REQUIRE_FALSE(m.has_value());
    if (field)
        *field = d.field;
    return static_cast<error>(m.error().value());
}

struct temp_file {
    std::string path;
    explicit temp_file(std::string_view content, std::string name = "mailroom-test.bin")
    {
        path = std::filesystem::temp_directory_path() / (std::to_string(::getpid()) + "-" + name);
        std::ofstream(path, std::ios::binary) << content;
    }
    ~temp_file() { std::remove(path.c_str()); }
};

} // namespace

TEST_SUITE("mime.message")
{
    TEST_CASE("a minimal message")
    {
        const std::string w = wire(basic());
        check_wire_form(w);
        const std::string h = headers_of(w);
        CHECK(h.find("From: Alice <alice@example.com>\r\n") != std::string::npos);
        CHECK(h.find("To: bob@example.net\r\n") != std::string::npos);
        CHECK(h.find("Subject: Hello\r\n") != std::string::npos);
        CHECK(h.find("MIME-Version: 1.0\r\n") != std::string::npos);
        CHECK(h.find("Content-Type: text/plain; charset=utf-8\r\n") != std::string::npos);
        CHECK(h.find("Content-Transfer-Encoding: 7bit\r\n") != std::string::npos);
        CHECK(h.starts_with("Date: "));
        CHECK(w.ends_with("\r\n\r\nHi Bob\r\n"));
    }

    TEST_CASE("envelope: Bcc in the envelope only, duplicates once, Sender as MAIL FROM")
    {
        auto b = basic();
        b.cc("Carol <carol@example.org>").bcc("secret@example.org").to("bob@example.net");
        diagnostics d;
        auto m = b.build(d);
        REQUIRE(m.has_value());
        const auto& env = m->envelope();
        CHECK(env.from.str() == "alice@example.com");
        REQUIRE(env.recipients.size() == 3);
        CHECK(env.recipients[0].str() == "bob@example.net");
        CHECK(env.recipients[1].str() == "carol@example.org");
        CHECK(env.recipients[2].str() == "secret@example.org");
        const std::string w = *m->serialize();
        CHECK(w.find("secret") == std::string::npos);
        CHECK(w.find("Bcc") == std::string::npos);

        b.sender("list-bounces@example.com");
        m = b.build(d);
        REQUIRE(m.has_value());
        CHECK(m->envelope().from.str() == "list-bounces@example.com");
        b.envelope_from("bounce+123@example.com");
        m = b.build(d);
        REQUIRE(m.has_value());
        CHECK(m->envelope().from.str() == "bounce+123@example.com");
    }

    TEST_CASE("SMTPUTF8 and 8BITMIME needs are reported in the envelope")
    {
        auto b = basic();
        CHECK_FALSE(b.build_or_throw().envelope().smtputf8);
        b.to("用户@例子.广告");
        CHECK(b.build_or_throw().envelope().smtputf8);

        auto c = basic();
        c.text("Grüße");
        CHECK_FALSE(c.build_or_throw().envelope().eight_bit);
        c.mode(mime::transfer_mode::eight_bit);
        auto m = c.build_or_throw();
        CHECK(m.envelope().eight_bit);
        CHECK(m.serialize()->find("Content-Transfer-Encoding: 8bit") != std::string::npos);
    }

    TEST_CASE("transfer encoding per part")
    {
        auto cte = [](std::string body) {
            auto b = basic();
            b.text(std::move(body));
            const std::string w = wire(b);
            const auto p = w.find("Content-Transfer-Encoding: ");
            return w.substr(p + 27, w.find("\r\n", p) - p - 27);
        };
        CHECK(cte("short ascii lines") == "7bit");
        CHECK(cte(std::string(100, 'a')) == "quoted-printable");
        CHECK(cte("Grüße aus Köln, a mostly ASCII sentence.") == "quoted-printable");
        CHECK(cte("日本語のテキスト") == "base64");
        CHECK(cte(std::string("nul\0inside", 10)) == "quoted-printable");
    }

    TEST_CASE("structure: alternative, related, mixed")
    {
        temp_file img("\x89PNG fake image", "logo.png");
        auto b = basic();
        b.html("<img src=\"cid:logo\">").inline_file("logo", img.path);
        mime::attachment a;
        a.filename = "report.pdf";
        a.data = "%PDF-1.4 fake";
        b.attach(a);
        const std::string w = wire(b);
        check_wire_form(w);
        const auto mixed = w.find("Content-Type: multipart/mixed");
        const auto alt = w.find("Content-Type: multipart/alternative");
        const auto plain = w.find("Content-Type: text/plain");
        const auto related = w.find("Content-Type: multipart/related");
        const auto html = w.find("Content-Type: text/html");
        const auto png = w.find("Content-Type: image/png");
        const auto pdf = w.find("Content-Type: application/pdf; name=\"report.pdf\"");
        CHECK(mixed < alt);
        CHECK(alt < plain);
        CHECK(plain < related);
        CHECK(related < html);
        CHECK(html < png);
        CHECK(png < pdf);
        CHECK(pdf != std::string::npos);
        CHECK(w.find("Content-ID: <logo>\r\n") != std::string::npos);
        const std::string logo_name = std::filesystem::path(img.path).filename().string();
        CHECK(w.find("Content-Disposition: inline; filename=\"" + logo_name + "\"") !=
              std::string::npos);
    }

    TEST_CASE("boundaries never occur inside a part")
    {
        // A body that quotes every boundary-looking string it can: a clash would make the
        // builder pick another boundary.
        auto b = basic();
        b.html("<p>--=_mr</p>\n--=_mr\n--=_mraaaaaaaaaaaaaaaaaaaaaaaaaa\n");
        const std::string w = wire(b);
        const auto p = w.find("boundary=\"");
        REQUIRE(p != std::string::npos);
        const std::string boundary = w.substr(p + 10, w.find('"', p + 10) - p - 10);
        std::size_t count = 0;
        for (auto q = w.find(boundary); q != std::string::npos; q = w.find(boundary, q + 1))
            ++count;
        CHECK(count == 4); // header, two delimiters, close delimiter
    }

    TEST_CASE("headers fold at 78 and unfold to the original")
    {
        std::string subject;
        for (int i = 0; i < 40; ++i)
            subject += "word" + std::to_string(i) + " ";
        subject += "end";
        auto b = basic();
        b.subject(subject);
        for (int i = 0; i < 12; ++i)
            b.to("Recipient Number " + std::to_string(i) + " <r" + std::to_string(i) +
                 "@example.com>");
        const std::string h = headers_of(wire(b));
        for (std::size_t pos = 0; pos < h.size();) {
            auto e = h.find("\r\n", pos);
            CHECK(e - pos <= 78);
            pos = e + 2;
        }
        CHECK(unfold(h).find("Subject: " + subject + "\r\n") != std::string::npos);
        CHECK(unfold(h).find("Recipient Number 11 <r11@example.com>\r\n") != std::string::npos);
    }

    TEST_CASE("encoded-word look-alikes in user text are themselves encoded")
    {
        auto b = basic();
        b.subject("=?utf-8?q?=0D=0ABcc:_evil@example.com?=");
        const std::string h = headers_of(wire(b));
        CHECK(h.find("Subject: =?UTF-8?") != std::string::npos);
        CHECK(h.find("=?utf-8?q?") == std::string::npos);
        CHECK(h.find("Bcc") == std::string::npos);
    }

    TEST_CASE("display names: atoms, quoted strings, encoded words")
    {
        auto name_line = [](std::string name) {
            message_builder b;
            b.from("a@example.com").to(mailbox(*address::parse("x@example.com"), std::move(name)));
            const std::string w = wire(b);
            check_wire_form(w);
            const std::string h = headers_of(w);
            const auto p = h.find("\r\nTo: ");
            std::size_t end = p + 2;
            do { // the field ends at a CRLF not followed by white space
                end = h.find("\r\n", end + 1);
            } while (h[end + 2] == ' ');
            std::string field = h.substr(p + 2, end - p - 2);
            for (std::size_t pos = 0; pos < field.size();) { // every line within 78
                const auto e = std::min(field.find("\r\n", pos), field.size());
                CHECK(e - pos <= 78);
                pos = e + 2;
            }
            return unfold(field).substr(4);
        };
        CHECK(name_line("Plain Name") == "Plain Name <x@example.com>");
        CHECK(name_line("Doe, Jane") == "\"Doe, Jane\" <x@example.com>");
        CHECK(name_line("say \"hi\" \\o/") == "\"say \\\"hi\\\" \\\\o/\" <x@example.com>");
        CHECK(name_line("Jörg").starts_with("=?UTF-8?"));
        CHECK(name_line("Anna  Lena") == "\"Anna  Lena\" <x@example.com>");
        // A long name with specials is cut into quoted-strings at single spaces, so it folds.
        std::string long_name;
        for (int i = 0; i < 20; ++i)
            long_name += "Dept. (" + std::to_string(i) + "), ";
        long_name += "end";
        const std::string folded = name_line(long_name);
        CHECK(folded.find("\" \"") != std::string::npos);
        // ...and a name of escaped quotes that can't be cut is encoded instead of overlong.
        const std::string quotes = name_line(std::string(600, '"'));
        CHECK(quotes.starts_with("=?UTF-8?"));
        // A single word too long for a line is encoded and folded, alone or among others.
        const std::string word = "Joh" + std::string(992, 'a');
        CHECK(name_line(word).starts_with("=?UTF-8?"));
        const std::string among = name_line("Drei " + word + " Größe");
        CHECK(among.starts_with("Drei =?UTF-8?"));
        CHECK(among.find(word) == std::string::npos);
        // ASCII words stay atoms; a run of other words is one encoded-word, unsplit.
        CHECK(name_line("Drei Größe") == "Drei =?UTF-8?B?R3LDtsOfZQ==?= <x@example.com>");
        // An atom that looks like an encoded-word is encoded, so it reads back literally.
        const std::string tricky = name_line("=?utf-8?q?Bob=40evil?= Mallory");
        CHECK(tricky.find("=?utf-8?q?Bob") == std::string::npos);
        CHECK(tricky.ends_with(" Mallory <x@example.com>"));
    }

    TEST_CASE("Message-ID: generated per build, from the From domain, or fixed")
    {
        auto b = basic();
        auto m1 = b.build_or_throw(), m2 = b.build_or_throw();
        CHECK(m1.message_id() != m2.message_id());
        CHECK(m1.message_id().ends_with("@example.com>"));
        CHECK(m1.serialize()->find("Message-ID: " + m1.message_id() + "\r\n") != std::string::npos);
        b.message_id_domain("mail.example.org");
        CHECK(b.build_or_throw().message_id().ends_with("@mail.example.org>"));
        b.message_id("abc.123@host.example");
        CHECK(b.build_or_throw().message_id() == "<abc.123@host.example>");
        CHECK(b.build_or_throw().message_id() == b.build_or_throw().message_id());
    }

    TEST_CASE("threading and list headers")
    {
        auto b = basic();
        b.in_reply_to("<a1@example.com>")
            .references("<a0@example.com>")
            .references("a1@example.com");
        b.list_unsubscribe("mailto:unsub@example.com").list_unsubscribe("https://example.com/u/1");
        b.list_unsubscribe_one_click();
        const std::string h = unfold(headers_of(wire(b)));
        CHECK(h.find("In-Reply-To: <a1@example.com>\r\n") != std::string::npos);
        CHECK(h.find("References: <a0@example.com> <a1@example.com>\r\n") != std::string::npos);
        CHECK(
            h.find("List-Unsubscribe: <mailto:unsub@example.com>, <https://example.com/u/1>\r\n") !=
            std::string::npos);
        CHECK(h.find("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n") != std::string::npos);
    }

    TEST_CASE("bad input is a typed error naming the field")
    {
        std::string field;
        CHECK(build_error(message_builder().to("a@b.com")) == error::missing_from);
        CHECK(build_error(message_builder().from("a@b.com")) == error::no_recipients);
        CHECK(build_error(basic().to("a@b@c"), &field) == error::invalid_address);
        CHECK(field == "To");
        CHECK(build_error(basic().cc("user@good.com(x)evil.com"), &field) ==
              error::invalid_address);
        CHECK(field == "Cc");
        CHECK(build_error(basic().subject("hi\r\nBcc: evil@example.com"), &field) ==
              error::control_character);
        CHECK(field == "Subject");
        CHECK(build_error(basic().subject(std::string("a\0b", 3))) == error::control_character);
        CHECK(build_error(basic().subject("\xff")) == error::invalid_utf8);
        CHECK(build_error(basic().header("X-Ok", "v\nInjected: 1"), &field) ==
              error::control_character);
        CHECK(field == "X-Ok");
        CHECK(build_error(basic().header("Bad Name", "v")) == error::invalid_header_name);
        CHECK(build_error(basic().header("X:Colon", "v")) == error::invalid_header_name);
        CHECK(build_error(basic().header("", "v")) == error::invalid_header_name);
        CHECK(build_error(basic().header("bcc", "x@y.com")) == error::reserved_header);
        CHECK(build_error(basic().header("Content-Type", "text/evil")) == error::reserved_header);
        CHECK(build_error(basic().message_id("no-at-sign")) == error::invalid_message_id);
        CHECK(build_error(basic().in_reply_to("<a b@c>")) == error::invalid_message_id);
        CHECK(build_error(basic().list_unsubscribe("https://x/ y")) == error::invalid_uri);
        CHECK(
            build_error(basic().list_unsubscribe("mailto:u@x.com").list_unsubscribe_one_click()) ==
            error::invalid_uri);
        CHECK(build_error(basic().text("\xc3")) == error::invalid_utf8);
        CHECK(build_error(basic().attach_file("/nonexistent/file.pdf"), &field) ==
              error::file_unreadable);
        mime::attachment a;
        a.filename = "../../etc/passwd";
        CHECK(build_error(basic().attach(a)) == error::invalid_filename);
        a.filename = std::string(256, 'n');
        CHECK(build_error(basic().attach(a)) == error::invalid_filename);
        a.filename = "x.bin";
        a.content_type = "not a type";
        CHECK(build_error(basic().attach(a)) == error::invalid_content_type);
        CHECK(build_error(basic().inline_file("bad id", "/etc/hostname")) ==
              error::invalid_content_id);
        mailbox evil(*address::parse("x@example.com"), "Eve\r\nBcc: victim@example.com");
        CHECK(build_error(basic().to(evil)) == error::control_character);
    }

    TEST_CASE("a file attachment streams in chunks and matches the declared size")
    {
        std::string content(1 << 20, '\0');
        for (std::size_t i = 0; i < content.size(); ++i)
            content[i] = static_cast<char>(i * 131 % 251);
        temp_file f(content, "big.bin");
        auto b = basic();
        b.attach_file(f.path);
        auto m = b.build_or_throw();
        auto r = m.open();
        std::string streamed;
        std::size_t chunks = 0;
        error_code ec;
        const std::uint64_t total = r.remaining();
        for (auto c = r.next(ec); !c.empty(); c = r.next(ec)) {
            CHECK(c.size() <= 96 * 1024);
            streamed += c;
            ++chunks;
        }
        CHECK_FALSE(ec);
        CHECK(chunks > 10);
        CHECK(total == m.size());
        CHECK(streamed.size() == m.size());
        CHECK(streamed == *m.serialize());
        check_wire_form(streamed);

        // The same bytes from memory give the same encoding.
        auto b2 = basic();
        mime::attachment a;
        a.filename = std::filesystem::path(f.path).filename().string();
        a.data = content;
        b2.attach(a);
        auto m2 = b2.build_or_throw();
        CHECK(m2.size() == m.size());
    }

    TEST_CASE("a file that changes after build() is an error, not a wrong message")
    {
        temp_file f("original content", "changing.txt");
        auto b = basic();
        b.attach_file(f.path);
        auto m = b.build_or_throw();
        std::ofstream(f.path, std::ios::binary) << "longer content than before";
        auto s = m.serialize();
        REQUIRE_FALSE(s);
        CHECK(s.error() == error::file_changed);
        std::remove(f.path.c_str());
        s = m.serialize();
        REQUIRE_FALSE(s);
        CHECK(s.error() == error::file_unreadable);
    }

    TEST_CASE("attachment names: ASCII, RFC 2231 and RFC 2047 forms")
    {
        mime::attachment a;
        a.filename = "Prüfbericht 2026 – final.pdf";
        a.data = "x";
        auto b = basic();
        b.attach(a);
        const std::string w = wire(b);
        check_wire_form(w);
        CHECK(w.find("filename*0*=utf-8''Pr%C3%BCfbericht%202026%20%E2%80%93%20final.pdf") !=
              std::string::npos);
        CHECK(w.find("name=\"=?UTF-8?") != std::string::npos);
    }

    TEST_CASE("media types from file names")
    {
        CHECK(mime::media_type_for("a.PDF") == "application/pdf");
        CHECK(mime::media_type_for("photo.jpeg") == "image/jpeg");
        CHECK(mime::media_type_for("noext") == "application/octet-stream");
        CHECK(mime::media_type_for("archive.tar.gz") == "application/gzip");
        CHECK(mime::media_type_for("x.unknownext") == "application/octet-stream");
    }

    TEST_CASE("from_bytes keeps the bytes and the envelope")
    {
        envelope env;
        env.from = *address::parse("a@example.com");
        env.recipients.push_back(*address::parse("b@example.com"));
        const std::string bytes = "Subject: x\r\n\r\nbody\r\n";
        auto m = mime::message::from_bytes(bytes, env, "<id@x>");
        CHECK(m.size() == bytes.size());
        CHECK(*m.serialize() == "Subject: x\r\n\r\nbody\r\n");
        CHECK(m.envelope().recipients.size() == 1);
        CHECK(m.message_id() == "<id@x>");
    }
}

TEST_SUITE("mime.from_wire")
{
    TEST_CASE("the envelope comes from the headers; Bcc is removed; line ends become CRLF")
    {
        const std::string eml = "From: \"Doe, Jane\" <jane@example.com>\n"
                                "To: a@example.org, \"B, b\" <b@example.org>,\n"
                                "  undisclosed: c@example.org, d@example.org;\n"
                                "Cc: <e@example.org> (comment, with comma)\n"
                                "Bcc: hidden@example.net,\n"
                                " hidden2@example.net\n"
                                "Message-ID: <abc@example.com>\n"
                                "Subject: hi\n"
                                "\n"
                                "body\n";
        diagnostics d;
        auto m = mime::message::from_wire(eml, d);
        REQUIRE_MESSAGE(m.has_value(), d.to_string());
        CHECK(m->envelope().from.str() == "jane@example.com");
        std::vector<std::string> rcpts;
        for (const auto& a : m->envelope().recipients)
            rcpts.push_back(a.str());
        CHECK(rcpts == std::vector<std::string>{"a@example.org", "b@example.org", "c@example.org",
                                                "d@example.org", "e@example.org",
                                                "hidden@example.net", "hidden2@example.net"});
        CHECK(m->message_id() == "<abc@example.com>");
        const std::string w = *m->serialize();
        CHECK(w.find("hidden") == std::string::npos);
        CHECK(w.find("Bcc") == std::string::npos);
        CHECK(w.find("Subject: hi\r\n\r\nbody\r\n") != std::string::npos);
        check_wire_form(w);
        CHECK_FALSE(m->envelope().smtputf8);
        CHECK_FALSE(m->envelope().eight_bit);
    }

    TEST_CASE("Sender is the reverse-path; 8-bit content is flagged")
    {
        diagnostics d;
        auto m = mime::message::from_wire("From: a@example.com\r\nSender: s@example.com\r\n"
                                          "To: 用户@例子.广告\r\n\r\nGrüße\r\n",
                                          d);
        REQUIRE(m.has_value());
        CHECK(m->envelope().from.str() == "s@example.com");
        CHECK(m->envelope().smtputf8);
        CHECK(m->envelope().eight_bit);
    }

    TEST_CASE("bad headers are typed errors naming the field")
    {
        diagnostics d;
        auto m = mime::message::from_wire("To: a@example.com\r\n\r\nx\r\n", d);
        REQUIRE_FALSE(m.has_value());
        CHECK(m.error() == error::missing_from);
        m = mime::message::from_wire("From: a@example.com\r\nSubject: x\r\n\r\nx\r\n", d);
        REQUIRE_FALSE(m.has_value());
        CHECK(m.error() == error::no_recipients);
        m = mime::message::from_wire("From: a@example.com\r\nTo: x@y@z\r\n\r\nx\r\n", d);
        REQUIRE_FALSE(m.has_value());
        CHECK(m.error() == error::invalid_address);
        CHECK(d.field == "To");
        m = mime::message::from_wire(
            "From: a@example.com\r\nTo: b@example.com\r\n\r\n" + std::string(999, 'x'), d);
        REQUIRE_FALSE(m.has_value());
        CHECK(m.error() == error::line_too_long);
    }

    TEST_CASE("with_envelope keeps the bytes")
    {
        auto m = basic().build_or_throw();
        envelope env = m.envelope();
        env.recipients = {*address::parse("other@example.com")};
        auto m2 = m.with_envelope(env);
        CHECK(*m2.serialize() == *m.serialize());
        CHECK(m2.envelope().recipients.size() == 1);
        CHECK(m2.message_id() == m.message_id());
    }
}

namespace {

// from_wire_file with the body streamed however small the file (limits.whole = 0).
result<mime::message> from_file(const std::string& path, diagnostics& d,
                                std::uint64_t header_limit = 1 << 20)
{
    return mime::detail::from_wire_file(path, d, {.whole = 0, .header = header_limit});
}

// from_wire_file gives what from_wire gives the same bytes: the error and its diagnostics, or
// the envelope, Message-ID, size and wire form.
void check_same_as_from_wire(const std::string& content, std::uint64_t header_limit = 1 << 20)
{
    CAPTURE(content);
    temp_file f(content, "from-wire-file.eml");
    diagnostics d1, d2;
    auto a = mime::message::from_wire(content, d1);
    auto b = from_file(f.path, d2, header_limit);
    REQUIRE(a.has_value() == b.has_value());
    if (!a) {
        CHECK(a.error() == b.error());
        CHECK(d1.to_string() == d2.to_string());
        return;
    }
    CHECK(a->envelope().from == b->envelope().from);
    CHECK(a->envelope().recipients == b->envelope().recipients);
    CHECK(a->envelope().smtputf8 == b->envelope().smtputf8);
    CHECK(a->envelope().eight_bit == b->envelope().eight_bit);
    CHECK(a->message_id() == b->message_id());
    CHECK(a->size() == b->size());
    auto wa = a->serialize();
    auto wb = b->serialize();
    REQUIRE(wa);
    REQUIRE(wb);
    CHECK(*wa == *wb);
    CHECK(wb->size() == b->size());
}

} // namespace

TEST_SUITE("mime.from_wire_file")
{
    TEST_CASE("crlf_stream in pieces equals to_crlf_lines of the whole")
    {
        std::mt19937 rng(13);
        const std::string alphabet = "ab\r\n\r\n\x80 ";
        for (int round = 0; round < 2000; ++round) {
            std::string in(rng() % 40, ' ');
            for (auto& c : in)
                c = alphabet[rng() % alphabet.size()];
            std::string out;
            mime::detail::crlf_stream s;
            for (std::size_t pos = 0; pos < in.size();) {
                const std::size_t n = std::min<std::size_t>(rng() % 5, in.size() - pos);
                s.append(out, std::string_view(in).substr(pos, n));
                pos += n;
            }
            s.finish(out);
            CAPTURE(in);
            CHECK(out == mime::detail::to_crlf_lines(in));
        }
    }

    TEST_CASE("the same message, envelope and errors as from_wire")
    {
        const std::string head = "From: a@example.com\nTo: b@example.org\n";
        for (const std::string& content : {
                 head + "\nbody\n", // LF
                 std::string("From: a@example.com\r\nTo: b@example.org\r\n\r\nbody\r\n"),
                 std::string("From: a@example.com\rTo: b@example.org\r\rbody\r"), // CR
                 head + "\r\nbody",                                         // no final line break
                 head + "\r",                                               // ends on the blank CR
                 head + "\n\n\n\r\r\n.\n..\nx\r",                           // empty lines
                 head + "Subject: no body",                                 // header only, no break
                 std::string("\nFrom: a@example.com\nTo: b@example.org\n"), // starts blank
                 head + "Bcc: c@example.net,\n d@example.net\nCc: e@example.net\n\nx\n",
                 head + "Bcc: c@example.net\n", // Bcc last, no body
                 head + "Message-ID:  <id@example.com>\n\nx\n",
                 head + "Subject: Grüße\n\nx\n",             // SMTPUTF8
                 head + "\nGrüße\n",                         // 8-bit body
                 head + "\n" + std::string(998, 'x') + "\n", // longest line
                 head + "\n" + std::string(999, 'x') + "\n", // line_too_long
                 head + "X-Long: " + std::string(999, 'x') + "\n\nx\n",
                 std::string("To: b@example.org\n\nx\n"),              // missing_from
                 std::string("From: a@example.com\n\nx\n"),            // no_recipients
                 std::string("From: a@example.com\nTo: x@y@z\n\nx\n"), // invalid address
             })
            check_same_as_from_wire(content);
    }

    TEST_CASE("random messages: the same as from_wire, in memory or streamed")
    {
        std::mt19937 rng(2026);
        const std::string pieces[] = {"From: a@example.com",
                                      "To: b@example.org",
                                      "Bcc: c@example.net",
                                      " folded",
                                      "Subject: x",
                                      "",
                                      "body",
                                      ".",
                                      "é",
                                      std::string(300, 'y')};
        const std::string breaks[] = {"\n", "\r\n", "\r"};
        for (int round = 0; round < 300; ++round) {
            std::string content;
            const int lines = 1 + static_cast<int>(rng() % 12);
            for (int i = 0; i < lines; ++i) {
                content += pieces[rng() % std::size(pieces)];
                if (i + 1 < lines || rng() % 2)
                    content += breaks[rng() % std::size(breaks)];
            }
            check_same_as_from_wire(content);
            check_same_as_from_wire(content, 8); // long header sections are read whole
        }
    }

    TEST_CASE("a large file's body is read from the file, in chunks, each time it is written")
    {
        std::string body;
        for (int i = 0; body.size() < (3u << 20); ++i)
            body += "line " + std::to_string(i) + (i % 3 ? "\n" : "\r\n");
        const std::string content = "From: a@example.com\nTo: b@example.org\n"
                                    "Bcc: hidden@example.net\n\n" +
                                    body;
        temp_file f(content, "large.eml");
        diagnostics d;
        auto m = mime::message::from_wire_file(f.path, d);
        REQUIRE_MESSAGE(m.has_value(), d.to_string());
        auto in_memory = mime::message::from_wire(content, d);
        REQUIRE(in_memory.has_value());
        CHECK(m->size() == in_memory->size());
        CHECK(m->envelope().recipients == in_memory->envelope().recipients);
        auto reader = m->open();
        std::string out;
        error_code ec;
        for (auto chunk = reader.next(ec); !chunk.empty(); chunk = reader.next(ec)) {
            CHECK(chunk.size() <= 128 * 1024);
            out += chunk;
        }
        REQUIRE_FALSE(ec);
        CHECK(out == *in_memory->serialize());
        CHECK(out.find("hidden") == std::string::npos);
        CHECK(*m->serialize() == out); // and again

        // The body comes from the file: changing the file changes what happens.
        std::ofstream(f.path, std::ios::binary | std::ios::app) << "more";
        auto s = m->serialize();
        REQUIRE_FALSE(s);
        CHECK(s.error() == error::file_changed);
        std::remove(f.path.c_str());
        s = m->serialize();
        REQUIRE_FALSE(s);
        CHECK(s.error() == error::file_unreadable);
    }

    TEST_CASE("a file whose line breaks change size at the same length is file_changed")
    {
        const std::string content = "From: a@example.com\nTo: b@example.org\n\none\ntwo\n";
        temp_file f(content, "same-size.eml");
        diagnostics d;
        auto m = from_file(f.path, d);
        REQUIRE(m.has_value());
        std::string changed = content;
        changed[changed.size() - 5] = 'x'; // "one\n" -> "onex": one CRLF fewer on the wire
        std::ofstream(f.path, std::ios::binary) << changed;
        auto s = m->serialize();
        REQUIRE_FALSE(s);
        CHECK(s.error() == error::file_changed);
        changed = content;
        changed[changed.size() - 6] = '\n'; // one more line break: more octets than declared
        std::ofstream(f.path, std::ios::binary) << changed;
        s = m->serialize();
        REQUIRE_FALSE(s);
        CHECK(s.error() == error::file_changed);
    }

    TEST_CASE("a file that can't be read is file_unreadable")
    {
        diagnostics d;
        auto m = mime::message::from_wire_file("/nonexistent/x.eml", d);
        REQUIRE_FALSE(m.has_value());
        CHECK(m.error() == error::file_unreadable);
        CHECK(d.detail.find("/nonexistent/x.eml") != std::string::npos);
        m = mime::message::from_wire_file(std::filesystem::temp_directory_path(), d);
        REQUIRE_FALSE(m.has_value());
        CHECK(m.error() == error::file_unreadable);
    }
}

TEST_SUITE("mime.message")
{
    TEST_CASE("a builder used as a template: each message its own headers, one body")
    {
        // 7bit text with bare LFs, and 8-bit text that must be encoded: both prepared once by
        // text()/html(), and every build lays out the same body.
        std::string text;
        for (int i = 0; i < 3000; ++i)
            text += "line " + std::to_string(i) + " of the newsletter\n";
        auto b = basic();
        b.text(text).html("<p>Grüße aus Köln, from the whole team at Example</p>");
        const std::string w1 = wire(b.subject("first")), w2 = wire(b.subject("second"));
        const auto body = [](const std::string& w) {
            return w.substr(w.find("\r\n\r\n"));
        };
        check_wire_form(w1);
        CHECK(w1.find("Subject: first\r\n") != std::string::npos);
        CHECK(w2.find("Subject: second\r\n") != std::string::npos);
        CHECK(w1.find("line 2999 of the newsletter\r\n") != std::string::npos);
        CHECK(w1.find("K=C3=B6ln") != std::string::npos);
        // Only the multipart boundary (random per build) tells the bodies apart.
        const auto boundary = [](const std::string& w) {
            const auto at = w.find("boundary=\"") + 10;
            return w.substr(at, w.find('"', at) - at);
        };
        std::string b1 = body(w1), b2 = body(w2);
        for (std::size_t at; (at = b1.find(boundary(w1))) != std::string::npos;)
            b1.replace(at, boundary(w1).size(), "B");
        for (std::size_t at; (at = b2.find(boundary(w2))) != std::string::npos;)
            b2.replace(at, boundary(w2).size(), "B");
        CHECK(b1 == b2);
        // A copy that changes its text leaves the original's alone.
        auto copy = b;
        copy.text("something else");
        CHECK(wire(b).find("line 2999 of the newsletter") != std::string::npos);
        CHECK(wire(copy).find("something else\r\n") != std::string::npos);
        // Invalid UTF-8 is still build()'s error, whenever text() was called.
        b.text("bad \xff byte");
        CHECK(build_error(b) == error::invalid_utf8);
    }
}

// from_wire's field names, control characters and recipient lists; the builder's recipient cap.

#include <mailroom/mime/message_builder.hpp>

#include "mime/message_data.hpp"
#include "mime/recipient_list.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <unistd.h>

using namespace mailroom;
using mime::message_builder;

namespace {

const std::string head = "From: a@example.com\r\nTo: b@example.org\r\n";

std::vector<std::string> rcpts_of(const mime::message& m)
{
    std::vector<std::string> out;
    for (const auto& a : m.envelope().recipients)
        out.push_back(a.str());
    return out;
}

// A file holding `content`, removed at the end of the test.
struct temp_eml {
    std::string path;
    explicit temp_eml(const std::string& content)
    {
        path = "/tmp/mailroom-from-wire-" + std::to_string(::getpid()) + ".eml";
        std::ofstream(path, std::ios::binary) << content;
    }
    ~temp_eml() { std::remove(path.c_str()); }
};

// from_wire, then the same bytes through from_wire_file streamed (limits.whole = 0): both must
// give the same result, error and diagnostics.
result<mime::message> both(const std::string& content, diagnostics& d,
                           const mime::from_wire_options& opts = {})
{
    auto a = mime::message::from_wire(content, d, opts);
    temp_eml f(content);
    diagnostics d2;
    auto b = mime::detail::from_wire_file(f.path, d2, {.whole = 0}, opts);
    REQUIRE(a.has_value() == b.has_value());
    if (a) {
        CHECK(a->envelope().recipients == b->envelope().recipients);
        CHECK(*a->serialize() == *b->serialize());
    } else {
        CHECK(a.error() == b.error());
        CHECK(d.to_string() == d2.to_string());
    }
    return a;
}

std::string addresses(std::size_t n, std::size_t from = 0)
{
    std::string s;
    for (std::size_t i = from; i < from + n; ++i)
        s += (i == from ? "" : ",\r\n ") + std::string("user") + std::to_string(i) + "@example.org";
    return s;
}

} // namespace

TEST_SUITE("mime.from_wire")
{
    TEST_CASE("white space before the colon: Bcc :, BCC<TAB>:, folded Bcc are all Bcc")
    {
        for (const std::string bcc : {
                 "Bcc : secret@example.com\r\n",
                 "BCC\t: secret@example.com\r\n",
                 "bcc \t  : secret@example.com\r\n",
                 "Bcc\r\n : secret@example.com\r\n", // folded before the colon
                 "Bcc :\r\n secret@example.com\r\n", // folded after it
                 "Bcc:\r\n\tsecret@example.com,\r\n\tb@example.org\r\n",
                 "Bcc : Secret <secret@example.com>\r\n",
             }) {
            for (const std::string& content : {
                     head + bcc + "Subject: x\r\n\r\nbody\r\n",
                     bcc + head + "\r\nbody\r\n", // the first field
                     head + bcc + "\r\nbody\r\n", // the last field
                 }) {
                CAPTURE(content);
                diagnostics d;
                auto m = both(content, d);
                REQUIRE_MESSAGE(m.has_value(), d.to_string());
                auto rcpts = rcpts_of(*m);
                std::sort(rcpts.begin(), rcpts.end());
                CHECK(rcpts == std::vector<std::string>{"b@example.org", "secret@example.com"});
                const std::string w = *m->serialize();
                CHECK(w.find("secret") == std::string::npos);
                CHECK(w.find("Secret") == std::string::npos);
                CHECK(w.find("cc") == std::string::npos);
                CHECK(w.find("CC") == std::string::npos);
                CHECK(w.find("From: a@example.com\r\n") != std::string::npos);
                CHECK(w.find("To: b@example.org\r\n") != std::string::npos);
            }
        }
        // LF line ends, as an .eml file may have them.
        diagnostics d;
        auto m = both("From: a@example.com\nBcc : secret@example.com\nTo: b@example.org\n\nx\n", d);
        REQUIRE(m.has_value());
        CHECK(rcpts_of(*m) == std::vector<std::string>{"secret@example.com", "b@example.org"});
        CHECK(m->serialize()->find("secret") == std::string::npos);
    }

    TEST_CASE("every field from_wire reads uses the same name: From, Sender, To, Cc, Message-ID")
    {
        diagnostics d;
        auto m = both("From  : f@example.com\r\n"
                      "SENDER\t: s@example.com\r\n"
                      "to : t@example.org\r\n"
                      "Cc\r\n\t: c@example.org\r\n"
                      "Message-Id : <id@example.com>\r\n"
                      "\r\nx\r\n",
                      d);
        REQUIRE_MESSAGE(m.has_value(), d.to_string());
        CHECK(m->envelope().from.str() == "s@example.com");
        CHECK(rcpts_of(*m) == std::vector<std::string>{"t@example.org", "c@example.org"});
        CHECK(m->message_id() == "<id@example.com>");
        // Fields other than Bcc are sent as they were written.
        CHECK(m->serialize()->starts_with("From  : f@example.com\r\nSENDER\t: s@example.com\r\n"));

        // A bad address names the field by its name, white space dropped.
        auto bad = both("From: a@example.com\r\nTo : x@y@z\r\n\r\nx\r\n", d);
        REQUIRE_FALSE(bad.has_value());
        CHECK(bad.error() == error::invalid_address);
        CHECK(d.field == "To");
    }

    TEST_CASE("control characters in header fields are refused; TAB is allowed")
    {
        for (const std::string& field : {
                 std::string("Subject: a\0b\r\n", 14),
                 std::string("X-N\0ame: v\r\n", 12),
                 std::string("Bcc\0: secret@example.com\r\n", 26),
                 std::string("Subject: a\x01\r\n"),
                 std::string("Subject: \x1b[31mred\r\n"),
                 std::string("Subject: a\x7f\r\n"),
                 std::string("Subject: a\x0b\x0c\r\n"),
                 std::string("Subject: x,\r\n \x08"
                             "folded\r\n"),
             }) {
            CAPTURE(field);
            for (const std::string& content :
                 {head + field + "\r\nbody\r\n", field + head + "\r\nbody\r\n"}) {
                diagnostics d;
                auto m = both(content, d);
                REQUIRE_FALSE(m.has_value());
                CHECK(m.error() == error::control_character);
                CHECK(d.detail.find("control character 0x") != std::string::npos);
                CHECK(d.to_string().find('\0') == std::string::npos);
            }
        }
        diagnostics d;
        auto m = both("From: a@example.com\r\nTo: b@example.org\r\nSubject:\ta\tb\r\n"
                      "X-Folded: x\r\n\ty\r\n\r\nNUL " +
                          std::string(1, '\0') + " in the body is the body's business\r\n",
                      d);
        CHECK_MESSAGE(m.has_value(), d.to_string());
    }

    TEST_CASE("a header line with no field name is refused")
    {
        struct bad_case {
            std::string content;
            std::string why;
        };
        for (const auto& [content, why] : {
                 // RFC 5322 §2.2.3: a continuation line with no field above it.
                 bad_case{" Bcc: secret@example.com\r\n" + head + "\r\nx\r\n", "continuation"},
                 bad_case{"\tFrom: a@example.com\r\nTo: b@example.org\r\n\r\nx\r\n",
                          "continuation"},
                 bad_case{head + "no colon here\r\n\r\nx\r\n", "'no colon here'"},
                 bad_case{"From sender@example.com Mon Dec  7 17:00:00 2026\r\n" + head +
                              "\r\nx\r\n",
                          "'From sender@example.com Mon Dec  7 17:00'"}, // an mbox separator
                 bad_case{head + "B cc: secret@example.com\r\n\r\nx\r\n", "without a field name"},
                 bad_case{head + ": empty name\r\n\r\nx\r\n", "without a field name"},
                 bad_case{head + "Bcc\xc2\xa0: secret@example.com\r\n\r\nx\r\n",
                          "without a field name"},
             }) {
            CAPTURE(content);
            diagnostics d;
            auto m = both(content, d);
            REQUIRE_FALSE(m.has_value());
            CHECK(m.error() == error::invalid_header_name);
            CHECK(d.field == "header");
            CHECK(d.detail.find(why) != std::string::npos);
        }
    }

    TEST_CASE("recipients once each, in To, Cc, Bcc order, across fields and spellings")
    {
        diagnostics d;
        auto m = both("From: a@example.com\r\n"
                      "To: x@example.org, y@example.org, x@example.org\r\n"
                      "Cc: Why <y@example.org>, z@example.org\r\n"
                      "Bcc: z@example.org, x@example.org, w@example.net\r\n"
                      "\r\nx\r\n",
                      d);
        REQUIRE(m.has_value());
        CHECK(rcpts_of(*m) == std::vector<std::string>{"x@example.org", "y@example.org",
                                                       "z@example.org", "w@example.net"});
    }

    TEST_CASE("de-duplication is linear: a bounded number of comparisons per recipient")
    {
        // A 1 MiB To: list (45 000 addresses, each twice) and ten times fewer: the old
        // list search made some 3·10⁹ comparisons here; hashing makes about one per address.
        auto comparisons = [](std::size_t n) {
            const std::string list = addresses(n);
            const std::string content =
                "From: a@example.com\r\nTo: " + list + "\r\nCc: " + list + "\r\n\r\nx\r\n";
            diagnostics d;
            const auto before = mime::detail::recipient_comparisons().load();
            auto m = mime::message::from_wire(content, d, {.max_recipients = n});
            const auto made = mime::detail::recipient_comparisons().load() - before;
            REQUIRE_MESSAGE(m.has_value(), d.to_string());
            REQUIRE(m->envelope().recipients.size() == n);
            CHECK(m->envelope().recipients.front().str() == "user0@example.org");
            CHECK(m->envelope().recipients.back().str() ==
                  "user" + std::to_string(n - 1) + "@example.org");
            MESSAGE(n << " recipients, each twice: " << made << " address comparisons");
            return made;
        };
        const std::size_t big = 45000;
        CHECK(addresses(big).size() >= (1u << 20));
        const auto small_count = comparisons(big / 10);
        const auto big_count = comparisons(big);
        CHECK(small_count <= 4 * big / 10); // 2n lookups, each about one comparison
        CHECK(big_count <= 4 * big);
        CHECK(big_count <= 15 * small_count); // ten times the list: about ten times the work
    }

    TEST_CASE("the recipient cap: at most max_recipients distinct, then too_many_recipients")
    {
        diagnostics d;
        // Duplicates don't count.
        auto m = both(head + "Cc: b@example.org, c@example.org, b@example.org\r\n\r\nx\r\n", d,
                      {.max_recipients = 2});
        REQUIRE(m.has_value());
        CHECK(m->envelope().recipients.size() == 2);
        m = both(head + "Bcc: c@example.org, d@example.org\r\n\r\nx\r\n", d, {.max_recipients = 2});
        REQUIRE_FALSE(m.has_value());
        CHECK(m.error() == error::too_many_recipients);
        CHECK(m.error() == condition::invalid_input);
        CHECK(d.field == "Bcc");
        CHECK(d.detail.find("more than 2 distinct recipients") != std::string::npos);

        // The default: 10 000.
        CHECK(mime::from_wire_options{}.max_recipients == 10000);
        m = both("From: a@example.com\r\nTo: " + addresses(10000) + "\r\n\r\nx\r\n", d);
        REQUIRE(m.has_value());
        CHECK(m->envelope().recipients.size() == 10000);
        m = both("From: a@example.com\r\nTo: " + addresses(10000) +
                     "\r\nCc: " + addresses(1, 10000) + "\r\n\r\nx\r\n",
                 d);
        REQUIRE_FALSE(m.has_value());
        CHECK(m.error() == error::too_many_recipients);
        CHECK(d.field == "Cc");
        // The public from_wire_file takes the options too.
        temp_eml f(head + "Cc: c@example.org\r\n\r\nx\r\n");
        auto fm = mime::message::from_wire_file(f.path, d, {.max_recipients = 1});
        REQUIRE_FALSE(fm.has_value());
        CHECK(fm.error() == error::too_many_recipients);
    }
}

TEST_SUITE("mime.recipient_list")
{
    TEST_CASE("first-seen order, each once, capped with nothing changed past the cap")
    {
        mime::detail::recipient_list l(2);
        const auto x = *address::parse("x@example.org");
        const auto y = *address::parse("y@example.org");
        const auto z = *address::parse("z@example.org");
        using o = mime::detail::recipient_list::outcome;
        CHECK(l.add(x) == o::added);
        CHECK(l.add(x) == o::duplicate);
        CHECK(l.add(y) == o::added);
        CHECK(l.add(z) == o::too_many);
        CHECK(l.add(y) == o::duplicate);
        CHECK(l.size() == 2);
        CHECK(std::move(l).take() == std::vector<address>{x, y});
    }

    TEST_CASE("comparisons grow linearly: 10 000 and 100 000 addresses")
    {
        auto comparisons = [](std::size_t n) {
            std::vector<address> as;
            for (std::size_t i = 0; i < n; ++i)
                as.push_back(*address::parse("u" + std::to_string(i) + "@d" +
                                             std::to_string(i % 97) + ".example"));
            mime::detail::recipient_list l(n);
            const auto before = mime::detail::recipient_comparisons().load();
            for (int pass = 0; pass < 2; ++pass)
                for (const address& a : as)
                    l.add(a);
            CHECK(l.size() == n);
            return mime::detail::recipient_comparisons().load() - before;
        };
        const auto c10k = comparisons(10000);
        const auto c100k = comparisons(100000);
        MESSAGE("comparisons: " << c10k << " for 10 000, " << c100k << " for 100 000");
        CHECK(c10k <= 40000);
        CHECK(c100k <= 400000);
        CHECK(c100k <= 15 * c10k);
    }
}

TEST_SUITE("mime.message")
{
    TEST_CASE("the builder de-duplicates in linear time and caps the recipients")
    {
        message_builder b;
        b.from("a@example.com").text("x");
        for (int i = 0; i < 20000; ++i)
            b.to("user" + std::to_string(i % 5000) + "@example.org");
        b.bcc("user0@example.org").bcc("hidden@example.net");
        diagnostics d;
        const auto before = mime::detail::recipient_comparisons().load();
        auto m = b.build(d);
        const auto made = mime::detail::recipient_comparisons().load() - before;
        REQUIRE_MESSAGE(m.has_value(), d.to_string());
        CHECK(m->envelope().recipients.size() == 5001);
        CHECK(m->envelope().recipients.back().str() == "hidden@example.net");
        CHECK(made <= 2 * 20002);

        b.max_recipients(5000);
        m = b.build(d);
        REQUIRE_FALSE(m.has_value());
        CHECK(m.error() == error::too_many_recipients);
        CHECK(d.field == "recipients");
        CHECK(d.detail.find("more than 5000") != std::string::npos);
        b.max_recipients(5001);
        CHECK(b.build(d).has_value());

        message_builder many;
        many.from("a@example.com").text("x");
        for (int i = 0; i <= 10000; ++i)
            many.bcc("user" + std::to_string(i) + "@example.org");
        m = many.build(d);
        REQUIRE_FALSE(m.has_value());
        CHECK(m.error() == error::too_many_recipients);
    }

    TEST_CASE("header(): reserved names are refused however they are spelled")
    {
        for (const char* name : {"Bcc", "BCC", "bcc", "Bcc ", " Bcc", "Bcc\t", "Bcc:", "To ",
                                 "Content-Type ", "Bcc\r\nX"}) {
            CAPTURE(name);
            diagnostics d;
            auto m = message_builder()
                         .from("a@example.com")
                         .to("b@example.org")
                         .header(name, "secret@example.com")
                         .build(d);
            REQUIRE_FALSE(m.has_value());
            CHECK((m.error() == error::reserved_header || m.error() == error::invalid_header_name));
        }
    }

    TEST_CASE("an encoded-word display name is decoded, then encoded afresh")
    {
        diagnostics d;
        auto m = message_builder()
                     .from("=?iso-8859-1?q?J=F6rg?= <j@example.com>")
                     .to("=?utf-8?q?Gr=C3=B6?= =?utf-8?q?=C3=9Fe?= <g@example.org>")
                     .text("x")
                     .build(d);
        REQUIRE_MESSAGE(m.has_value(), d.to_string());
        const std::string w = *m->serialize();
        CHECK(w.find("iso-8859-1") == std::string::npos);
        CHECK(w.find("=?utf-8?q?Gr") == std::string::npos);
        // Read back with the same parser: the names come back as decoded.
        auto field = [&](std::string_view name) {
            auto p = w.find("\r\n" + std::string(name) + ": ");
            REQUIRE(p != std::string::npos);
            p += name.size() + 4;
            std::string v = w.substr(p, w.find("\r\n", p) - p);
            return *mailbox::parse(v);
        };
        CHECK(field("From").display_name() == "Jörg");
        CHECK(field("To").display_name() == "Größe");

        // A name that decodes to a line break is refused, not sent.
        auto bad = message_builder()
                       .from("=?utf-8?q?x=0D=0ABcc=3A_evil?= <j@example.com>")
                       .to("b@example.org")
                       .build(d);
        REQUIRE_FALSE(bad.has_value());
        CHECK(bad.error() == error::control_character);
        CHECK(d.field == "From");
    }
}

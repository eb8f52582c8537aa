// RFC 2047 encoded-words in display names, as mailbox::parse decodes them.

#include <mailroom/address.hpp>

#include <doctest/doctest.h>

using mailroom::diagnostics;
using mailroom::error;
using mailroom::mailbox;

namespace {

std::string name_of(std::string_view text)
{
    diagnostics d;
    auto m = mailbox::parse(text, d);
    REQUIRE_MESSAGE(m.has_value(), text << ": " << d.to_string());
    CHECK(m->address().str() == "j@example.com");
    return m->display_name();
}

error error_of(std::string_view text)
{
    diagnostics d;
    auto m = mailbox::parse(text, d);
    REQUIRE_MESSAGE(!m.has_value(), "expected a failure for '" << text << "'");
    CHECK_MESSAGE(d.detail.find("encoded-word") != std::string::npos, d.detail);
    return static_cast<error>(m.error().value());
}

} // namespace

TEST_SUITE("address.encoded_words")
{
    TEST_CASE("Q and B words in UTF-8 are decoded, whatever the case of charset and encoding")
    {
        CHECK(name_of("=?utf-8?q?J=C3=B6rg?= <j@example.com>") == "Jörg");
        CHECK(name_of("=?UTF-8?Q?J=c3=b6rg_M=C3=BCller?= <j@example.com>") == "Jörg Müller");
        CHECK(name_of("=?UTF-8?B?SsO2cmc=?= <j@example.com>") == "Jörg");
        CHECK(name_of("=?utf-8?b?8J+YgA==?= <j@example.com>") == "😀");
        CHECK(name_of("=?us-ascii?q?Plain_Name?= <j@example.com>") == "Plain Name");
        // RFC 2231 §5: a language after the charset.
        CHECK(name_of("=?utf-8*de?q?Gr=C3=BC=C3=9Fe?= <j@example.com>") == "Grüße");
    }

    TEST_CASE("ISO-8859-x and Windows-125x through iconv")
    {
        CHECK(name_of("=?iso-8859-1?q?J=F6rg?= <j@example.com>") == "Jörg");
        CHECK(name_of("=?ISO-8859-2?Q?=A3=F3d=BC?= <j@example.com>") == "Łódź");
        CHECK(name_of("=?iso-8859-7?q?=E1=E2=E3?= <j@example.com>") == "αβγ");
        CHECK(name_of("=?ISO-8859-15?Q?=A4?= <j@example.com>") == "€");
        CHECK(name_of("=?iso-8859-16?q?=AA?= <j@example.com>") == "Ș");
        CHECK(name_of("=?windows-1252?q?=80_5?= <j@example.com>") == "€ 5");
        CHECK(name_of("=?Windows-1251?Q?=CF=F0=E8=E2=E5=F2?= <j@example.com>") == "Привет");
        CHECK(name_of("=?windows-1250?b?o/Nkvw==?= <j@example.com>") == "Łódż");
    }

    TEST_CASE("adjacent encoded-words are joined; other white space is kept")
    {
        // RFC 2047 §6.2: white space between two encoded-words is not displayed...
        CHECK(name_of("=?utf-8?q?Gr=C3=B6?= =?utf-8?q?=C3=9Fe?= <j@example.com>") == "Größe");
        CHECK(name_of("=?utf-8?q?a?=   =?iso-8859-1?q?=E9?= =?utf-8?b?Yw==?= <j@example.com>") ==
              "aéc");
        // ...but between an encoded-word and a word it is, and a comment is not white space.
        CHECK(name_of("Dr. =?utf-8?q?J=C3=B6rg?= Smith <j@example.com>") == "Dr. Jörg Smith");
        CHECK(name_of("=?utf-8?q?a?= (note) =?utf-8?q?b?= <j@example.com>") == "a b");
        CHECK(name_of("=?utf-8?q?a_?= =?utf-8?q?_b?= <j@example.com>") == "a  b");
    }

    TEST_CASE("what is not an encoded-word stays literal")
    {
        // Inside a quoted-string "=?...?=" is text (RFC 2047 §5).
        CHECK(name_of("\"=?utf-8?q?J=C3=B6rg?=\" <j@example.com>") == "=?utf-8?q?J=C3=B6rg?=");
        for (const char* literal : {
                 "=?utf-8?q?J=C3=Grg?=",   // a broken escape
                 "=?utf-8?q?J=C3?=x",      // not the whole atom
                 "x=?utf-8?q?J?=",         //
                 "=?utf-8?x?abc?=",        // an unknown encoding
                 "=?utf-8?qq?abc?=",       //
                 "=?koi8-r?q?abc?=",       // a charset not decoded here
                 "=?iso-8859-12?q?abc?=",  // there is no ISO-8859-12
                 "=?windows-1259?q?abc?=", //
                 "=?utf-8?q?\?=",          // empty text
                 "=?utf-8?b?SsO2cmc?=",    // base64 that is not canonical
                 "=?utf-8?b?Sv=2cmc=?=",   //
                 "=??q?abc?=",             // no charset
                 "=?utf-8?q?a?b?=",        // too many parts
             }) {
            CAPTURE(literal);
            CHECK(name_of(std::string(literal) + " <j@example.com>") == literal);
        }
    }

    TEST_CASE("decoded controls are refused, never kept in a name")
    {
        for (const char* bad : {
                 "=?utf-8?q?a=0D=0ABcc=3A_x?=", // CR LF: a header line in the name
                 "=?utf-8?q?a=00b?=",           // NUL
                 "=?utf-8?q?a=09b?=",           // TAB
                 "=?utf-8?q?a=1B=5B31mb?=",     // ESC: a terminal escape
                 "=?utf-8?q?a=7F?=",            // DEL
                 "=?utf-8?q?a=C2=85?=",         // C1 (NEL) in UTF-8
                 "=?iso-8859-1?q?a=85?=",       // C1 from Latin-1
                 "=?utf-8?b?YQ1i?=",            // CR, base64
             }) {
            CAPTURE(bad);
            CHECK(error_of(std::string(bad) + " <j@example.com>") == error::control_character);
        }
    }

    TEST_CASE("text that is not valid in its charset is refused")
    {
        for (const char* bad : {
                 "=?utf-8?q?=C3?=",                   // a truncated sequence
                 "=?utf-8?q?=ED=A0=80?=",             // a surrogate
                 "=?utf-8?q?=C0=AF?=",                // an overlong '/'
                 "=?utf-8?b?/w==?=",                  // 0xFF
                 "=?us-ascii?q?caf=E9?=",             // 8-bit in US-ASCII
                 "=?windows-1252?q?=81?=",            // no character at 0x81
                 "=?utf-8?q?Gr=C3?= =?utf-8?q?=B6?=", // a character split between two words
             }) {
            CAPTURE(bad);
            CHECK(error_of(std::string(bad) + " <j@example.com>") == error::invalid_utf8);
        }
    }

    TEST_CASE("addresses and comments are not decoded")
    {
        auto m = mailbox::parse("j@example.com (=?utf-8?q?J=C3=B6rg?=)");
        REQUIRE(m);
        CHECK(m->display_name().empty());
        // An encoded-word is never an address.
        CHECK_FALSE(mailbox::parse("=?utf-8?q?j=40example.com?=").has_value());
    }
}

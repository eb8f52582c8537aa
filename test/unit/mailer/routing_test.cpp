#include "mailer/routing.hpp"

#include <doctest/doctest.h>

using mailroom::error;
using mailroom::detail::route_table;

TEST_CASE("routing: exact domains, wildcards, the most specific wins, else the fallback")
{
    route_table t;
    REQUIRE_FALSE(t.add("example.com", 0));
    REQUIRE_FALSE(t.add("*.example.com", 1));
    REQUIRE_FALSE(t.add("*.eu.example.com", 2));
    REQUIRE_FALSE(t.add("Other.ORG", 3));
    CHECK(t.find("example.com") == 0u);
    CHECK(t.find("EXAMPLE.com") == 0u);
    CHECK(t.find("mail.example.com") == 1u);
    CHECK(t.find("a.b.example.com") == 1u);
    CHECK(t.find("eu.example.com") == 2u); // "*.eu.example.com" covers eu.example.com too
    CHECK(t.find("x.eu.example.com") == 2u);
    CHECK(t.find("other.org") == 3u);
    CHECK_FALSE(t.find("notexample.com"));
    CHECK_FALSE(t.find("com"));
    CHECK_FALSE(t.find(""));
    t.fallback = 7;
    CHECK(t.find("nowhere.net") == 7u);
    CHECK(t.find("") == 7u); // the null sender
}

TEST_CASE("routing: a wildcard also covers its own domain unless it has an exact entry")
{
    route_table t;
    REQUIRE_FALSE(t.add("*.example.com", 1));
    CHECK(t.find("example.com") == 1u);
}

TEST_CASE("routing: international domains match in either form")
{
    route_table t;
    REQUIRE_FALSE(t.add("bücher.example", 4));
    CHECK(t.find("xn--bcher-kva.example") == 4u);
    CHECK(t.find("BÜCHER.example") == 4u);
}

TEST_CASE("routing: bad and repeated patterns are refused")
{
    route_table t;
    CHECK(t.add("exa mple.com", 0) == error::invalid_domain);
    CHECK(t.add("", 0) == error::invalid_domain);
    CHECK(t.add("*.", 0) == error::invalid_domain);
    REQUIRE_FALSE(t.add("example.com", 0));
    CHECK(t.add("EXAMPLE.COM", 1) == error::invalid_mailer_options);
    CHECK_FALSE(t.add("*.example.com", 1)); // a wildcard is another pattern
}

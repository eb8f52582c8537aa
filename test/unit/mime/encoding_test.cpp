#include "mime/encoding.hpp"

#include <doctest/doctest.h>

using namespace mailroom::mime::detail;

TEST_CASE("base64 of RFC 4648 test vectors")
{
    const std::pair<std::string_view, std::string_view> vectors[] = {
        {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},         {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
    };
    for (auto [in, want] : vectors) {
        std::string out;
        base64_append(out, in);
        CHECK(out == want);
        CHECK(base64_size(in.size()) == want.size());
    }
}

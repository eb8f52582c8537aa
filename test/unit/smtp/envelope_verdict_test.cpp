#include "smtp/envelope_verdict.hpp"

#include <doctest/doctest.h>

#include <vector>

using namespace mailroom;
using smtp::reply;
using smtp::detail::envelope_verdict;
using smtp::detail::judge_envelope;
using kind = envelope_verdict::kind;

namespace {

reply r(int code)
{
    return reply{code, std::nullopt, {"text"}};
}

std::vector<smtp::recipient_status> rcpts(std::initializer_list<int> codes)
{
    std::vector<smtp::recipient_status> v;
    for (int c : codes)
        v.push_back({*address::parse("x@example.com"), r(c)});
    return v;
}

} // namespace

TEST_SUITE("smtp.envelope_verdict")
{
    TEST_CASE("accepted envelope: send the data")
    {
        const reply mail = r(250), data = r(354);
        auto v = judge_envelope(mail, rcpts({250, 550}), &data);
        CHECK(v.k == kind::send_data);
        v = judge_envelope(mail, rcpts({250}), nullptr); // BDAT: no DATA command
        CHECK(v.k == kind::send_data);
    }

    TEST_CASE("replies that can't answer their command are out of step")
    {
        const reply ok = r(250), go = r(354);
        CHECK(judge_envelope(go, rcpts({250}), &go).k == kind::out_of_step);
        CHECK(judge_envelope(ok, rcpts({250, 354}), &go).k == kind::out_of_step);
        CHECK(judge_envelope(ok, rcpts({250}), &ok).k == kind::out_of_step);
    }

    TEST_CASE("a 421 anywhere closes")
    {
        const reply ok = r(250), go = r(354), bye = r(421);
        auto v = judge_envelope(bye, rcpts({503}), &go);
        CHECK(v.k == kind::closing);
        CHECK(v.cause == &bye);
        v = judge_envelope(ok, rcpts({250, 421}), &go);
        CHECK(v.k == kind::closing);
        CHECK(std::string(v.step) == "RCPT TO");
        CHECK(judge_envelope(ok, rcpts({250}), &bye).k == kind::closing);
    }

    TEST_CASE("refusals name the deciding reply; the worst recipient refusal wins")
    {
        const reply ok = r(250), go = r(354), no_mail = r(550), no_data = r(554);
        auto v = judge_envelope(no_mail, rcpts({503}), &no_data);
        CHECK(v.k == kind::refused);
        CHECK(v.cause == &no_mail);
        CHECK_FALSE(v.rset);

        auto list = rcpts({450, 550, 451});
        v = judge_envelope(ok, list, &no_data);
        CHECK(v.k == kind::refused);
        CHECK(v.cause == &list[1].response);
        CHECK(v.rset);
        CHECK_FALSE(v.end_empty_data);

        v = judge_envelope(ok, rcpts({450}), &go); // DATA accepted, nobody to send to
        CHECK(v.k == kind::refused);
        CHECK(v.end_empty_data);

        v = judge_envelope(ok, rcpts({250}), &no_data);
        CHECK(v.k == kind::refused);
        CHECK(v.cause == &no_data);
        CHECK(std::string(v.step) == "DATA");
    }
}

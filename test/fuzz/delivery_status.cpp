// Fuzz target: mime::parse_delivery_status (a bounce from anyone on the Internet).
//
// Input: the report's bytes. Invariants:
// - it ends with no error and a complete report, or with not_a_delivery_status or
//   delivery_status_too_large and an incomplete one; never another error;
// - the bounds hold: no more recipients than max_recipients, with tight bounds too;
// - parsing is deterministic: the same bytes give the same report;
// - a report read whole (complete) keeps every recipient's enhanced status in range (class 2,
//   4 or 5) and its code text agrees with the numbers.
// Slow inputs (anything worse than linear) show as libFuzzer timeouts.
#include "fuzz.hpp"

#include <mailroom/mime/delivery_status.hpp>

#include <string>

using mailroom::diagnostics;
using mailroom::error;
namespace mime = mailroom::mime;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    mime::delivery_status r;
    diagnostics d;
    const auto ec = mime::parse_delivery_status(bytes, r, d);
    FUZZ_CHECK(!ec || ec == error::not_a_delivery_status || ec == error::delivery_status_too_large,
               "an error other than the report's own");
    FUZZ_CHECK(r.complete == !ec, "complete disagrees with the error");
    FUZZ_CHECK(r.recipients.size() <= mime::delivery_status_options{}.max_recipients,
               "more recipients than the bound");
    for (const auto& rcpt : r.recipients) {
        if (!rcpt.status || ec)
            continue;
        const auto& s = *rcpt.status;
        FUZZ_CHECK(s.klass == 2 || s.klass == 4 || s.klass == 5, "a status class out of range");
        // The text as written ("4.00.0" has subject 0: RFC 3463 allows 1 to 3 digits).
        unsigned parts[3] = {0, 0, 0};
        std::size_t n = 0;
        bool digits = false;
        for (char c : s.code) {
            if (c == '.' && digits && n < 2) {
                ++n;
                digits = false;
            } else {
                FUZZ_CHECK(c >= '0' && c <= '9', "a status code with other than digits and dots");
                parts[n] = parts[n] * 10 + static_cast<unsigned>(c - '0');
                digits = true;
            }
        }
        FUZZ_CHECK(n == 2 && digits && parts[0] == s.klass && parts[1] == s.subject &&
                       parts[2] == s.detail,
                   "the status code's text and numbers disagree");
    }

    mime::delivery_status again;
    diagnostics d2;
    FUZZ_CHECK(mime::parse_delivery_status(bytes, again, d2) == ec &&
                   again.complete == r.complete && again.recipients.size() == r.recipients.size(),
               "the same bytes read otherwise");

    mime::delivery_status_options tight;
    tight.max_recipients = 1;
    tight.max_depth = 2;
    tight.max_parts = 3;
    mime::delivery_status small;
    const auto ec2 = mime::parse_delivery_status(bytes, small, d2, tight);
    FUZZ_CHECK(small.recipients.size() <= 1, "more recipients than a tight bound");
    FUZZ_CHECK(!ec2 || ec2 == error::not_a_delivery_status ||
                   ec2 == error::delivery_status_too_large,
               "an error other than the report's own, under tight bounds");
    return 0;
}

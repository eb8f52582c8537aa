#include <mailroom/smtp/delivery_report.hpp>

#include <algorithm>
#include <cctype>

namespace mailroom::smtp {

namespace {

// A queue id is a token of letters, digits and a few punctuation marks; anything else ends it.
std::string id_token(std::string_view s)
{
    std::size_t n = 0;
    while (n < s.size() && n < 128 &&
           (std::isalnum(static_cast<unsigned char>(s[n])) || s[n] == '-' || s[n] == '_' ||
            s[n] == '.' || s[n] == '@'))
        ++n;
    // A trailing '.' ends the sentence, not the id.
    while (n > 0 && s[n - 1] == '.')
        --n;
    return std::string(s.substr(0, n));
}

std::string lower(std::string_view s)
{
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

} // namespace

std::string find_queue_id(const reply& r)
{
    for (const std::string& line : r.lines) {
        const std::string l = lower(line);
        for (std::string_view marker : {"queued as ", "id=", "queue id ", "message accepted as "}) {
            const auto p = l.find(marker);
            if (p == std::string::npos)
                continue;
            std::string id = id_token(std::string_view(line).substr(p + marker.size()));
            if (!id.empty())
                return id;
        }
    }
    return {};
}

} // namespace mailroom::smtp

// Private: which provider a sender's domain goes to. Pure.
#pragma once

#include <mailroom/error.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mailroom::detail {

class route_table {
public:
    /// Adds `pattern` ("example.com", or "*.example.com" for it and its subdomains) for
    /// provider `index`. Errors: error::invalid_domain, error::invalid_mailer_options (a
    /// pattern given twice).
    error_code add(std::string_view pattern, std::size_t index);

    /// The provider for a sender domain (A-label form or not, any case): the most specific
    /// pattern that matches, else `fallback`.
    std::optional<std::size_t> find(std::string_view domain) const;

    std::optional<std::size_t> fallback;

private:
    struct entry {
        std::string domain; // lower-case A-labels
        bool subdomains = false;
        std::size_t index = 0;
    };
    std::vector<entry> entries_;
};

} // namespace mailroom::detail

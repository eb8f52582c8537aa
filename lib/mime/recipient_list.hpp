// Private: an envelope's recipient list, each address once, in the order first seen, built in
// linear time (a hash set beside the list) and capped. Header-only; used by from_wire and the
// message builder.
#pragma once

#include <mailroom/address.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace mailroom::mime::detail {

/// Address comparisons made by every recipient_list in the process, so tests can check that
/// de-duplication costs a bounded number of comparisons per recipient (linear in the list, where
/// a search of the list would be quadratic). Relaxed: a count, not a synchronisation point.
inline std::atomic<std::uint64_t>& recipient_comparisons() noexcept
{
    static std::atomic<std::uint64_t> n{0};
    return n;
}

/// Recipients in the order first seen, each once (address equality: the same local part and
/// ASCII domain), at most `max` of them.
class recipient_list {
public:
    enum class outcome {
        added,     ///< new: appended
        duplicate, ///< already there: nothing changed
        too_many,  ///< new, but the list already holds `max`: nothing changed
    };

    explicit recipient_list(std::size_t max)
        : max_(max)
        , seen_(0, hash{&list_}, equal{&list_})
    {
    }
    // The set's functors point at list_.
    recipient_list(const recipient_list&) = delete;
    recipient_list& operator=(const recipient_list&) = delete;

    outcome add(const address& a)
    {
        list_.push_back(a);
        if (!seen_.insert(list_.size() - 1).second) {
            list_.pop_back();
            return outcome::duplicate;
        }
        if (list_.size() > max_) {
            seen_.erase(list_.size() - 1);
            list_.pop_back();
            return outcome::too_many;
        }
        return outcome::added;
    }

    std::size_t size() const noexcept { return list_.size(); }
    std::size_t max() const noexcept { return max_; }
    bool empty() const noexcept { return list_.empty(); }

    /// The list; the object is done with after this.
    std::vector<address> take() && { return std::move(list_); }

private:
    // The set holds indexes into list_; hashing and equality look at the addresses there.
    struct hash {
        const std::vector<address>* list;
        std::size_t operator()(std::size_t i) const noexcept
        {
            const address& a = (*list)[i];
            const std::size_t h = std::hash<std::string_view>{}(a.local_part());
            return h ^ (std::hash<std::string_view>{}(a.domain_ascii()) + 0x9e3779b97f4a7c15ULL +
                        (h << 6) + (h >> 2));
        }
    };
    struct equal {
        const std::vector<address>* list;
        bool operator()(std::size_t i, std::size_t j) const noexcept
        {
            recipient_comparisons().fetch_add(1, std::memory_order_relaxed);
            return (*list)[i] == (*list)[j];
        }
    };

    std::size_t max_;
    std::vector<address> list_;
    std::unordered_set<std::size_t, hash, equal> seen_;
};

} // namespace mailroom::mime::detail

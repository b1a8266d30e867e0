#pragma once
// reservoir::global<Pool>: the process-wide pool(s). One pool for the whole
// application instead of one per component: initialized once at startup,
// reached from anywhere, optionally named ("primary", "replica").
//
//   auto& pool = reservoir::global<reservoir::PgPool>::init(reservoir::pg::Config::from_env());
//   ...
//   auto lease = reservoir::global<reservoir::PgPool>::get().acquire();

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "../core/error.hpp"

namespace reservoir {

template <class P>
class global {
public:
    static constexpr std::string_view default_name = "default";

    // Creates the default pool from `args` (P's constructor arguments).
    // Throws ConfigError if it already exists.
    template <class... Args>
    static P& init(Args&&... args) {
        return init_named(default_name, std::forward<Args>(args)...);
    }

    template <class... Args>
    static P& init_named(std::string_view name, Args&&... args) {
        std::lock_guard lk(mu());
        auto& pools = registry();
        if (pools.contains(name))
            throw ConfigError("reservoir: the global pool \"" + std::string(name) +
                              "\" is already initialized; init it once, at startup");
        P& pool = *pools.emplace(std::string(name), std::make_unique<P>(std::forward<Args>(args)...)).first->second;
        if (name == default_name) default_pool().store(&pool, std::memory_order_release);
        return pool;
    }

    // The default pool: one atomic load. Throws Error if init() has not run.
    static P& get() {
        if (P* pool = default_pool().load(std::memory_order_acquire)) return *pool;
        throw_missing(default_name);
    }

    static P& get(std::string_view name) {
        if (P* pool = find(name)) return *pool;
        throw_missing(name);
    }

    // nullptr when there is no pool of that name.
    static P* find(std::string_view name) noexcept {
        std::lock_guard lk(mu());
        auto& pools = registry();
        const auto it = pools.find(name);
        return it == pools.end() ? nullptr : it->second.get();
    }

    static std::vector<std::string> names() {
        std::lock_guard lk(mu());
        std::vector<std::string> out;
        for (const auto& [name, pool] : registry()) out.push_back(name);
        return out;
    }

    // shutdown(timeout) of every pool of this type, in turn, each within the
    // time left; true when all drained. For a SignalShutdown callback.
    static bool shutdown_all(std::chrono::milliseconds timeout) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        std::vector<P*> pools;
        {
            std::lock_guard lk(mu());
            for (auto& [name, pool] : registry()) pools.push_back(pool.get());
        }
        bool drained = true;
        for (P* pool : pools) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            drained = pool->shutdown(std::max(left, std::chrono::milliseconds::zero())) && drained;
        }
        return drained;
    }

    // Destroys every pool of this type (for tests, and at the very end of
    // main). No thread may be using them.
    static void reset() noexcept {
        std::map<std::string, std::unique_ptr<P>, std::less<>> doomed;
        {
            std::lock_guard lk(mu());
            default_pool().store(nullptr, std::memory_order_release);
            doomed.swap(registry());
        }
    }

private:
    [[noreturn]] static void throw_missing(std::string_view name) {
        throw Error(ErrorKind::config, "reservoir: the global pool \"" + std::string(name) +
                                           "\" is not initialized; call global<Pool>::init(...) at startup");
    }

    static std::mutex& mu() {
        static std::mutex m;
        return m;
    }
    static std::map<std::string, std::unique_ptr<P>, std::less<>>& registry() {
        static std::map<std::string, std::unique_ptr<P>, std::less<>> pools;
        return pools;
    }
    static std::atomic<P*>& default_pool() {
        static std::atomic<P*> pool{nullptr};
        return pool;
    }
};

}  // namespace reservoir

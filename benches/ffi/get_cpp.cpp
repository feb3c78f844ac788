// Per-call cost of a read through the C++ binding (bhsync::Node::get, which calls
// bhs_get and copies into a std::vector): same workload as get_c.c; prints ns/call and
// the ratio to Rust's Node::get from build/ffi_get_rust_ns when present.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "bhsync/bhsync.hpp"

int main(int argc, char **argv) {
    long calls = argc > 1 ? std::atol(argv[1]) : 100000;
    if (calls <= 0) calls = 100000;
    constexpr int kKeys = 1000, kRuns = 5;
    bhsync::Config config;
    config.set("io_backend", "mio");
    auto node = bhsync::Node::open(config);
    std::vector<std::string> keys;
    for (int i = 0; i < kKeys; i++) {
        char key[17];
        std::snprintf(key, sizeof key, "key-%012d", i);
        keys.emplace_back(key);
        node.put("default", keys.back(), std::string(100, '\7'));
    }
    std::array<double, kRuns> runs{};
    for (auto &run : runs) {
        auto start = std::chrono::steady_clock::now();
        std::size_t total = 0;
        for (long i = 0; i < calls; i++) total += node.get("default", keys[i % kKeys])->size();
        auto ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
        run = ns / calls;
        if (total == 0) return 1;
    }
    std::sort(runs.begin(), runs.end());
    double rust = 0;
    std::ifstream("build/ffi_get_rust_ns") >> rust;
    std::printf("  C++  -> Node::get       %10.0f ns/call", runs[kRuns / 2]);
    if (rust > 0) std::printf("  %.2fx", runs[kRuns / 2] / rust);
    std::printf("\n");
    return 0;
}

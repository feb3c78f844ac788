// Two bhsync nodes in one process, in C++: a write on the first becomes visible on the
// second. After `make install`: find_package(bhsync CONFIG REQUIRED) and link
// bhsync::bhsync (tests/install/cmake/CMakeLists.txt), or
// c++ -std=c++17 two_nodes.cpp $(pkg-config --cflags --libs bhsync). Inside the
// repository without installing:
//
//   cargo build --lib
//   c++ -std=c++17 -Iinclude -Ibindings/cpp/include examples/cpp/two_nodes.cpp
//       target/debug/libbhsync.a -lpthread -ldl -lm -o two_nodes_cpp   (one line)
//
// Failures throw bhsync::Error (status + message); absence is std::nullopt.
#include <chrono>
#include <iostream>
#include <thread>

#include "bhsync/bhsync.hpp"

int main() try {
    using namespace std::chrono_literals;
    bhsync::Config config;
    config.set("listen", "127.0.0.1:0").add_category("notes", "merge=lww,priority=high");
    bhsync::Node a = bhsync::Node::open(config);  // the node copies the config
    bhsync::Node b = bhsync::Node::open(config);
    b.connect(a.local_addr());

    a.put("notes", "greeting", "hello from node a");

    std::optional<bhsync::Bytes> value;
    for (int attempt = 0; attempt < 100 && !(value = b.get("notes", "greeting")); attempt++) {
        try {
            b.sync(std::nullopt, 1s);
        } catch (const bhsync::Error &) {
            // A sync that times out is retried on the next attempt.
        }
        std::this_thread::sleep_for(50ms);
    }
    if (!value) {
        std::cerr << "node b never received the write\n";
        return 1;
    }
    std::cout << "node b reads greeting = \"" << bhsync::ByteView(*value).as_string() << "\"\n";
    while (auto event = b.poll_event()) {
        if (event->kind == bhsync::Event::Updated) std::cout << "event on b: updated " << event->category << "\n";
    }
    std::cout << "state hashes " << (a.state_hash() == b.state_hash() ? "equal" : "differ") << "\n";
    return 0;  // the destructors close both nodes
} catch (const bhsync::Error &error) {
    std::cerr << error.what() << "\n";
    return 1;
}

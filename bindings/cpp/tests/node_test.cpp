// GoogleTest suite of the C++ binding: three nodes over loopback (write on each, sync,
// equal state hashes, every value read back), a conflict resolver written in C++ (a
// lambda), events (membership's among them), counters, network time, a chain category,
// and errors surfacing as bhsync::Error with their status. Run through ctest
// (`make cpp-test`).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "bhsync/bhsync.hpp"

using namespace std::chrono_literals;

namespace {

constexpr int kNodes = 3;
constexpr int kKeysPerNode = 50;

bhsync::Config config_for(int index) {
    bhsync::Config config;
    std::string secret(64, '5');
    secret[2] = static_cast<char>('a' + index);  // byte 1 differs: X25519 clamps byte 0
    config.set("identity_secret", secret)
        .set("io_backend", "auto")
        .set("anti_entropy_ms", "200")
        .add_category("counters", "merge=crdt,priority=high")
        .add_category("notes", "merge=custom");
    return config;
}

std::string key_of(int node, int k) { return "key-" + std::to_string(node) + "-" + std::to_string(k); }

class ThreeNodes : public ::testing::Test {
protected:
    void SetUp() override {
        for (int i = 0; i < kNodes; i++) nodes.push_back(bhsync::Node::open(config_for(i)));
    }

    void connect_all() {
        for (int i = 0; i < kNodes; i++)
            for (int j = i + 1; j < kNodes; j++) nodes[i].connect(nodes[j].local_addr());
        for (int tries = 0; tries < 200 && !all_connected(); tries++) std::this_thread::sleep_for(25ms);
        ASSERT_TRUE(all_connected()) << "three nodes did not connect within 5 s";
    }

    bool all_connected() {
        return std::all_of(nodes.begin(), nodes.end(),
                           [](bhsync::Node &n) { return n.metrics().peers_connected == kNodes - 1; });
    }

    bool hashes_equal() {
        auto first = nodes[0].state_hash();
        return std::all_of(nodes.begin(), nodes.end(), [&](bhsync::Node &n) { return n.state_hash() == first; });
    }

    void sync_until_equal() {
        for (int round = 0; round < 40 && !hashes_equal(); round++) {
            for (auto &node : nodes) {
                try {
                    node.sync(std::nullopt, 10s);
                } catch (const bhsync::Error &error) {
                    ASSERT_EQ(error.status(), BHS_TIMEOUT) << error.what();
                }
            }
            if (!hashes_equal()) std::this_thread::sleep_for(50ms);
        }
        ASSERT_TRUE(hashes_equal()) << "state hashes still differ after 40 sync rounds";
    }

    std::vector<bhsync::Node> nodes;
};

TEST_F(ThreeNodes, WritesOnEachNodeAreReadEverywhereAfterSync) {
    connect_all();
    for (int i = 0; i < kNodes; i++) {
        for (int k = 0; k < kKeysPerNode; k++) nodes[i].put("default", key_of(i, k), "value " + key_of(i, k));
        EXPECT_GE(nodes[i].counter_add("counters", "hits", 10 + i), 10 + i);
    }
    EXPECT_TRUE(nodes[1].erase("default", key_of(1, 0)));
    EXPECT_FALSE(nodes[1].erase("default", "never-written"));
    sync_until_equal();
    for (auto &node : nodes) {
        for (int i = 0; i < kNodes; i++) {
            for (int k = 0; k < kKeysPerNode; k++) {
                auto value = node.get("default", key_of(i, k));
                if (i == 1 && k == 0) {
                    EXPECT_FALSE(value.has_value());
                    continue;
                }
                ASSERT_TRUE(value.has_value()) << key_of(i, k);
                EXPECT_EQ(bhsync::ByteView(*value).as_string(), "value " + key_of(i, k));
            }
        }
        EXPECT_EQ(node.counter_get("counters", "hits"), 33);
        EXPECT_EQ(node.category_root("default"), nodes[0].category_root("default"));
    }
    auto report = nodes[0].sync(nodes[1].id(), 10s);
    EXPECT_EQ(report.peers, 1u);
    EXPECT_EQ(report.peers_succeeded, 1u);
}

TEST_F(ThreeNodes, ACppResolverDecidesConflictsAndEventsArrive) {
    std::atomic<int> calls{0};
    for (auto &node : nodes) {
        // The longer value wins; equal lengths: the larger bytes. Deterministic on every node.
        node.set_conflict_resolver("notes", [&calls](const bhsync::Conflict &c) {
            calls++;
            EXPECT_EQ(c.category, "notes");
            auto local = c.local.value.as_string(), remote = c.remote.value.as_string();
            bool remote_wins = remote.size() != local.size() ? remote.size() > local.size() : remote > local;
            return remote_wins ? bhsync::Resolution::keep_remote() : bhsync::Resolution::keep_local();
        });
    }
    nodes[0].put("notes", "todo", "short");
    nodes[1].put("notes", "todo", "the longest note");
    nodes[2].put("notes", "todo", "medium note");
    connect_all();
    sync_until_equal();
    for (auto &node : nodes) EXPECT_EQ(bhsync::ByteView(*node.get("notes", "todo")).as_string(), "the longest note");
    EXPECT_GT(calls.load(), 0);

    int peer_up = 0, conflicts = 0, updates = 0;
    for (auto &node : nodes) {
        while (auto event = node.poll_event()) {
            peer_up += event->kind == bhsync::Event::PeerUp;
            conflicts += event->kind == bhsync::Event::ConflictResolved;
            updates += event->kind == bhsync::Event::Updated || event->kind == bhsync::Event::Streamed;
        }
    }
    EXPECT_GE(peer_up, kNodes * (kNodes - 1));
    EXPECT_GT(conflicts, 0);
    EXPECT_GT(updates, 0);
}

TEST(Node, AThrowingResolverFallsBackToTheLastWriter) {
    auto a = bhsync::Node::open(config_for(0));
    auto b = bhsync::Node::open(config_for(1));
    for (auto *node : {&a, &b})
        node->set_conflict_resolver("notes", [](const bhsync::Conflict &) -> bhsync::Resolution {
            throw std::runtime_error("cannot decide");
        });
    a.put("notes", "k", "from a");
    std::this_thread::sleep_for(5ms);
    b.put("notes", "k", "from b");  // the later write
    a.connect(b.local_addr());
    for (int i = 0; i < 100 && a.state_hash() != b.state_hash(); i++) {
        try {
            a.sync(std::nullopt, 5s);
        } catch (const bhsync::Error &) {
        }
        std::this_thread::sleep_for(20ms);
    }
    ASSERT_EQ(a.state_hash(), b.state_hash());
    EXPECT_EQ(bhsync::ByteView(*a.get("notes", "k")).as_string(), "from b");
    bool failed_conflict = false;
    while (auto event = a.poll_event())
        failed_conflict |= event->kind == bhsync::Event::ConflictResolved && event->failed();
    while (auto event = b.poll_event())
        failed_conflict |= event->kind == bhsync::Event::ConflictResolved && event->failed();
    EXPECT_TRUE(failed_conflict);
}

// Generous: SWIM's suspicion timeout is 2-12 s at this size (Lifeguard, ADR 020), and the
// machine running the tests may be busy.
constexpr auto kMemberEventLimit = 40s;

// Polls `node` until every id of `want` was named by an event of one of `kinds`, or
// `within` passed; returns the kind seen for each id named.
std::map<bhsync::NodeId, std::uint32_t> await_peers(bhsync::Node &node, const std::set<std::uint32_t> &kinds,
                                                    const std::set<bhsync::NodeId> &want,
                                                    std::chrono::seconds within) {
    std::map<bhsync::NodeId, std::uint32_t> seen;
    auto deadline = std::chrono::steady_clock::now() + within;
    while (seen.size() < want.size() && std::chrono::steady_clock::now() < deadline) {
        auto event = node.poll_event(100ms);
        if (event && kinds.count(event->kind) && want.count(event->peer)) seen[event->peer] = event->kind;
    }
    return seen;
}

TEST_F(ThreeNodes, MembersComeUpOnJoinAndAClosedNodeIsReportedDead) {
    connect_all();
    const std::set<std::uint32_t> up{bhsync::Event::MemberUp};
    EXPECT_EQ(await_peers(nodes[0], up, {nodes[1].id(), nodes[2].id()}, kMemberEventLimit).size(), 2u)
        << "node 0 did not see nodes 1 and 2 up";
    EXPECT_EQ(await_peers(nodes[1], up, {nodes[0].id(), nodes[2].id()}, kMemberEventLimit).size(), 2u)
        << "node 1 did not see nodes 0 and 2 up";

    bhsync::NodeId gone = nodes[2].id();
    nodes[2].close();
    const std::set<std::uint32_t> down{bhsync::Event::MemberDead, bhsync::Event::MemberLeft};
    for (int i = 0; i < 2; i++) {
        auto seen = await_peers(nodes[i], down, {gone}, kMemberEventLimit);
        EXPECT_EQ(seen.count(gone), 1u) << "node " << i << " did not see node 2 dead or left";
    }
}

// Converts a C event as poll_event does (its buffers are empty, so freeing is harmless).
bhsync::Event converted(std::uint32_t kind, std::uint32_t flags, std::uint8_t peer_byte) {
    bhs_event raw{};
    raw.size = sizeof(bhs_event);
    raw.kind = kind;
    raw.flags = flags;
    raw.count = 3;
    std::fill(std::begin(raw.peer), std::end(raw.peer), peer_byte);
    return bhsync::detail::event_of(raw);
}

TEST(Event, MemberKindsNameThePeerOnlyAPartitionIsReachableUnknownKindsPassThrough) {
    auto dead = converted(BHS_EVENT_MEMBER_DEAD, 0, 7);
    EXPECT_EQ(dead.kind, bhsync::Event::MemberDead);
    bhsync::NodeId sevens;
    sevens.fill(7);
    EXPECT_EQ(dead.peer, sevens);
    auto partition = converted(BHS_EVENT_PARTITION, BHS_EVENT_FLAG_REACHABLE, 0);
    EXPECT_TRUE(partition.reachable());
    EXPECT_EQ(partition.count, 3u);
    EXPECT_FALSE(converted(BHS_EVENT_CONFLICT, BHS_EVENT_FLAG_REACHABLE, 0).reachable());
    auto later = converted(99, 0, 0);  // a kind from a newer library keeps its number
    EXPECT_EQ(later.kind, 99u);
}

// B and C are given only A's address: they learn each other's through A, link, and keep
// syncing once A has closed (issue 16).
TEST(Node, TwoNodesKeepSyncingAfterTheirOnlySeedLeaves) {
    auto a = bhsync::Node::open(config_for(3));
    auto b = bhsync::Node::open(config_for(4));
    auto c = bhsync::Node::open(config_for(5));
    b.connect(a.local_addr());
    c.connect(a.local_addr());
    auto linked = [&] { return b.metrics().peers_connected == 2 && c.metrics().peers_connected == 2; };
    for (int tries = 0; tries < 600 && !linked(); tries++) std::this_thread::sleep_for(50ms);
    ASSERT_TRUE(linked()) << "b and c did not link through a within 30 s";
    a.close();
    b.put("default", "after", "the seed left");
    auto arrived = [&] { return c.get("default", "after").has_value(); };
    for (int tries = 0; tries < 600 && !arrived(); tries++) std::this_thread::sleep_for(50ms);
    ASSERT_TRUE(arrived()) << "the write did not reach c within 30 s";
    EXPECT_EQ(bhsync::ByteView(*c.get("default", "after")).as_string(), "the seed left");
}

TEST(Node, ErrorsCarryTheirStatusAndMessage) {
    EXPECT_TRUE(bhsync::abi_compatible());
    EXPECT_FALSE(bhsync::version().empty());
    bhsync::Config config;
    try {
        config.set("io_backend", "epoll");
        FAIL() << "a bad value must throw";
    } catch (const bhsync::Error &error) {
        EXPECT_EQ(error.status(), BHS_INVALID_ARGUMENT);
        EXPECT_NE(std::string(error.what()).find("io_uring"), std::string::npos);
    }
    EXPECT_THROW(config.add_category("bad name"), bhsync::Error);
    config.add_category("counters", "merge=crdt");
    auto node = bhsync::Node::open(config);
    EXPECT_FALSE(node.get("default", "absent").has_value());
    EXPECT_FALSE(node.get("nosuch", "k").has_value());
    EXPECT_THROW(node.put("nosuch", "k", "v"), bhsync::Error);
    try {
        node.counter_add("default", "k", 1);
        FAIL() << "a counter in an LWW category must throw";
    } catch (const bhsync::Error &error) {
        EXPECT_EQ(error.status(), BHS_WRONG_MERGE_RULE);
    }
    EXPECT_THROW(node.put("default", "k", bhsync::ByteView(nullptr, 5)), bhsync::Error);
    EXPECT_THROW(node.connect("not an address"), bhsync::Error);
    node.put("default", "", "");  // empty key and value are fine
    EXPECT_TRUE(node.get("default", "")->empty());
    EXPECT_NE(node.health_json().find("status"), std::string::npos);

    node.shutdown();
    try {
        node.put("default", "k", "v");
        FAIL() << "a stopped node must throw";
    } catch (const bhsync::Error &error) {
        EXPECT_EQ(error.status(), BHS_CLOSED);
    }
    node.close();
    EXPECT_THROW(node.state_hash(), bhsync::Error);  // closed: an empty handle, not a crash
}

TEST(Node, MovesTransferOwnershipAndManyThreadsShareOneNode) {
    auto opened = bhsync::Node::open(bhsync::Config{});
    bhsync::Node node = std::move(opened);
    EXPECT_EQ(opened.get(), nullptr);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; t++) {
        threads.emplace_back([&node, t] {
            for (int i = 0; i < 50; i++) {
                std::string key = "t" + std::to_string(t) + "-" + std::to_string(i);
                node.put("default", key, key);
                EXPECT_EQ(bhsync::ByteView(*node.get("default", key)).as_string(), key);
            }
        });
    }
    for (auto &thread : threads) thread.join();
    EXPECT_GE(node.metrics().size, sizeof(bhsync::Metrics));
}

TEST(Node, NetworkTimeOfALoneNodeIsTheLocalClockAndNeverGoesBack) {
    auto node = bhsync::Node::open(bhsync::Config{});
    bhsync::NetworkTime first = node.network_time();
    EXPECT_GT(first.offset_ms, -1000);
    EXPECT_LT(first.offset_ms, 1000);
    EXPECT_EQ(first.offset(), std::chrono::milliseconds(first.offset_ms));
    bhsync::NetworkTime previous = first;
    for (int i = 0; i < 50; i++) {
        bhsync::NetworkTime now = node.network_time();
        ASSERT_GE(now.unix_ms, previous.unix_ms) << "network time went backwards";
        previous = now;
    }
    auto drift = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now() -
                                                                       previous.time_point());
    EXPECT_LT(std::abs(drift.count()), 2000) << "network time is " << drift.count() << " ms from the local clock";
    node.shutdown();
    try {
        node.network_time();
        FAIL() << "a stopped node must throw";
    } catch (const bhsync::Error &error) {
        EXPECT_EQ(error.status(), BHS_CLOSED);
    }
}

// A data directory for one test, removed with everything in it at the end.
class TempDir {
public:
    TempDir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "bhsync-cpp-chain-XXXXXX").string();
        if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
        path_ = pattern;
    }
    TempDir(const TempDir &) = delete;
    TempDir &operator=(const TempDir &) = delete;
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    std::string path() const { return path_.string(); }

private:
    std::filesystem::path path_;
};

bhsync::Config chain_config(int index, const TempDir &dir) {
    bhsync::Config config;
    std::string secret(64, '6');
    secret[2] = static_cast<char>('a' + index);  // byte 1 differs: X25519 clamps byte 0
    config.set("identity_secret", secret).set("data_dir", dir.path()).add_category("ledger", "mode=chain");
    return config;
}

// Nodes with a chain category; the directories outlive the nodes (declared first).
class ChainNodes : public ::testing::Test {
protected:
    void open(int count) {
        for (int i = 0; i < count; i++) nodes.push_back(bhsync::Node::open(chain_config(i, dirs[i])));
        for (int i = 0; i < count; i++)
            for (int j = i + 1; j < count; j++) nodes[i].connect(nodes[j].local_addr());
    }

    TempDir dirs[3];
    std::vector<bhsync::Node> nodes;
};

TEST_F(ChainNodes, BlocksAppendedOnOneNodeReachEveryNodeAndReadBack) {
    open(3);
    bhsync::Node &a = nodes[0];
    bhsync::ChainHead genesis = a.chain_head("ledger");
    EXPECT_EQ(genesis.height, 0u);

    bhsync::ChainHead first = a.chain_append("ledger", {"pay 5", "pay 7"});
    EXPECT_EQ(first.height, 1u);
    EXPECT_NE(first.id, genesis.id);
    std::vector<bhsync::Bytes> owned = {bhsync::Bytes{'p', 'a', 'y', ' ', '9'}, bhsync::Bytes{}};  // empty allowed
    bhsync::ChainHead second = a.chain_append("ledger", owned);
    EXPECT_EQ(second.height, 2u);
    EXPECT_EQ(a.chain_head("ledger"), second);
    auto block = a.chain_block("ledger", 1);
    ASSERT_TRUE(block.has_value());
    EXPECT_EQ(block->size(), 176u + 4 + 2 * (4 + 5));
    EXPECT_EQ(bhsync::ByteView(*block).as_string().substr(block->size() - 5), "pay 7");
    EXPECT_EQ(a.chain_block("ledger", 2)->size(), 176u + 4 + (4 + 5) + 4);

    auto deadline = std::chrono::steady_clock::now() + 30s;
    for (int n = 1; n < 3; n++) {
        while (nodes[n].chain_head("ledger") != second) {
            ASSERT_LT(std::chrono::steady_clock::now(), deadline)
                << "node " << n << " is at height " << nodes[n].chain_head("ledger").height << " after 30 s";
            std::this_thread::sleep_for(50ms);
        }
        EXPECT_EQ(nodes[n].chain_block("ledger", 1), block);
    }
    EXPECT_FALSE(nodes[1].chain_block("ledger", 3).has_value());  // above the head
}

TEST_F(ChainNodes, BadArgumentsThrowInvalidArgument) {
    open(1);
    bhsync::Node &node = nodes[0];
    std::vector<bhsync::ByteView> too_many(BHS_MAX_BLOCK_TRANSACTIONS + 1);
    std::string too_long(BHS_MAX_TRANSACTION_LEN + 1, 'x');
    std::vector<std::function<void()>> calls = {
        [&] { node.chain_append("default", {"tx"}); },  // not the chain category
        [&] { node.chain_head("nosuch"); },
        [&] { node.chain_block("default", 0); },
        [&] { node.chain_append("", {"tx"}); },
        [&] { node.chain_append("ledger", too_many); },
        [&] { node.chain_append("ledger", {too_long}); },
        [&] { node.chain_append("ledger", {bhsync::ByteView(nullptr, 3)}); },
    };
    for (std::size_t i = 0; i < calls.size(); i++) {
        try {
            calls[i]();
            ADD_FAILURE() << "call " << i << " must throw";
        } catch (const bhsync::Error &error) {
            EXPECT_EQ(error.status(), BHS_INVALID_ARGUMENT) << "call " << i << ": " << error.what();
        }
    }
    try {
        node.put("ledger", "k", "v");
        FAIL() << "a put into the chain category must throw";
    } catch (const bhsync::Error &error) {
        EXPECT_EQ(error.status(), BHS_WRONG_MODE);
    }
    EXPECT_EQ(node.chain_head("ledger").height, 0u);  // nothing was appended
}

}  // namespace

// bhsync.hpp — header-only C++17 wrapper over the bhsync C ABI (include/bhsync.h).
//
// Idiomatic C++ over the C functions, after wasmtime's C++ wrapper:
//  - RAII, move-only handles: bhsync::Config and bhsync::Node release their C handle in
//    their destructor (a Node closes its engine; see Node::~Node).
//  - Inputs are views: std::string_view for names and text, bhsync::ByteView (a
//    pointer and a length, made from a string_view, a vector, an array or a
//    pointer+size) for keys and values. Nothing is kept after a call returns.
//  - Errors are exceptions: every failing call throws bhsync::Error, which carries the
//    bhs_status and the library's message. Absence is not an error: Node::get returns
//    std::optional, Node::erase returns bool, Node::poll_event returns std::optional.
//  - Thread safety: a Node may be used from several threads at once, as the C handle
//    may (DESIGN.md section 7). A conflict resolver runs on the node's engine thread;
//    it must not call into the same node, and exceptions it throws are caught and
//    count as "cannot decide" (the node keeps the last writer's value).
//
// Link with libbhsync (CMake: target bhsync::bhsync, from find_package(bhsync) or
// add_subdirectory(bindings/cpp)).
#ifndef BHSYNC_HPP
#define BHSYNC_HPP

#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bhsync.h"

namespace bhsync {

/// Owned bytes.
using Bytes = std::vector<std::uint8_t>;
/// A node's id: its 32-byte public key.
using NodeId = std::array<std::uint8_t, 32>;
/// A Merkle root or state hash.
using Hash = std::array<std::uint8_t, 32>;
/// Counters of a node (see include/bhsync.h for each field).
using Metrics = bhs_node_metrics;
/// What a sync did, summed over its peers.
using SyncReport = bhs_sync_report;
/// The 32-byte id of a chain block.
using BlockId = std::array<std::uint8_t, 32>;

/// Network time as Node::network_time reads it.
struct NetworkTime {
    /// Milliseconds since the Unix epoch as the node's peers agree on it; never lower
    /// than the node's previous read.
    std::uint64_t unix_ms = 0;
    /// Network time minus the local clock, in milliseconds (0 while too few peers agree).
    std::int64_t offset_ms = 0;

    /// `unix_ms` on the system clock (whose epoch is the Unix epoch).
    std::chrono::system_clock::time_point time_point() const {
        return std::chrono::system_clock::time_point(std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::milliseconds(static_cast<std::int64_t>(unix_ms))));
    }
    std::chrono::milliseconds offset() const { return std::chrono::milliseconds(offset_ms); }
};

/// A block of a chain category: its height (genesis at 0) and its id.
struct ChainHead {
    std::uint64_t height = 0;
    BlockId id{};

    bool operator==(const ChainHead &other) const noexcept { return height == other.height && id == other.id; }
    bool operator!=(const ChainHead &other) const noexcept { return !(*this == other); }
};

/// A borrowed run of bytes: what keys and values are passed as.
class ByteView {
public:
    constexpr ByteView() noexcept = default;
    constexpr ByteView(const std::uint8_t *data, std::size_t size) noexcept : data_(data), size_(size) {}
    ByteView(std::string_view text) noexcept  // NOLINT: implicit on purpose
        : data_(reinterpret_cast<const std::uint8_t *>(text.data())), size_(text.size()) {}
    ByteView(const char *text) noexcept  // NOLINT: NULL reads as empty
        : ByteView(text != nullptr ? std::string_view(text) : std::string_view()) {}
    ByteView(const std::string &text) noexcept : ByteView(std::string_view(text)) {}  // NOLINT
    ByteView(const Bytes &bytes) noexcept : data_(bytes.data()), size_(bytes.size()) {}  // NOLINT
    template <std::size_t N>
    ByteView(const std::array<std::uint8_t, N> &bytes) noexcept : data_(bytes.data()), size_(N) {}  // NOLINT

    constexpr const std::uint8_t *data() const noexcept { return data_; }
    constexpr std::size_t size() const noexcept { return size_; }
    constexpr bool empty() const noexcept { return size_ == 0; }
    std::string_view as_string() const noexcept { return {reinterpret_cast<const char *>(data_), size_}; }
    Bytes to_bytes() const { return Bytes(data_, data_ + size_); }

private:
    const std::uint8_t *data_ = nullptr;
    std::size_t size_ = 0;
};

/// A failed call: the C status and the library's message.
class Error : public std::runtime_error {
public:
    Error(bhs_status status, const std::string &message)
        : std::runtime_error(std::string(bhs_status_str(status)) + ": " + message), status_(status) {}
    /// The `BHS_*` code.
    bhs_status status() const noexcept { return status_; }

private:
    bhs_status status_;
};

namespace detail {
/// Throws the thread's last error when `status` is not BHS_OK.
inline void check(bhs_status status) {
    if (status != BHS_OK) throw Error(status, bhs_last_error());
}

/// An owned NUL-terminated copy of a view, for the C functions that take C strings.
inline std::string c_str(std::string_view text) { return std::string(text); }

/// Moves the bytes of a library buffer into a vector and releases the buffer.
inline Bytes take(bhs_buf &buf) {
    Bytes bytes(buf.data, buf.data + buf.len);
    bhs_buf_free(&buf);
    return bytes;
}

inline std::string take_text(bhs_buf &buf) {
    std::string text(reinterpret_cast<const char *>(buf.data), buf.len);
    bhs_buf_free(&buf);
    return text;
}
}  // namespace detail

/// The library's version string ("0.1.0"), and whether the linked library speaks the
/// ABI this header was written for.
inline std::string_view version() noexcept { return bhs_version(); }
inline bool abi_compatible() noexcept { return bhs_abi_version() == BHS_ABI_VERSION; }

/// A node configuration: string keys and values, checked as they are set (an unknown
/// key or a bad value throws Error with BHS_INVALID_ARGUMENT naming what is accepted).
class Config {
public:
    Config() {
        bhs_config *raw = nullptr;
        detail::check(bhs_config_new(&raw));
        handle_.reset(raw);
    }

    /// Sets one setting ("listen", "data_dir", "io_backend", "peers", … — see
    /// bhs_config_set in include/bhsync.h). Returns *this for chaining.
    Config &set(std::string_view key, std::string_view value) {
        detail::check(bhs_config_set(handle_.get(), detail::c_str(key).c_str(), detail::c_str(value).c_str()));
        return *this;
    }

    /// Adds a category or replaces its spec ("mode=eventual,merge=lww|crdt|custom,
    /// priority=critical|high|medium|low"; "" takes the defaults).
    Config &add_category(std::string_view name, std::string_view spec = "") {
        detail::check(bhs_config_add_category(handle_.get(), detail::c_str(name).c_str(), detail::c_str(spec).c_str()));
        return *this;
    }

    /// The C handle (still owned by this object).
    const bhs_config *get() const noexcept { return handle_.get(); }

private:
    struct Free {
        void operator()(bhs_config *config) const noexcept { bhs_config_free(config); }
    };
    std::unique_ptr<bhs_config, Free> handle_;
};

/// One version of a value, lent to a resolver for the duration of the call.
struct VersionedView {
    ByteView value;
    std::uint64_t hlc = 0;
    std::uint64_t counter = 0;
    NodeId origin{};
    bool tombstone = false;
};

/// A conflict handed to a resolver: two versions of one key, neither having seen the
/// other. Views are valid only during the call.
struct Conflict {
    std::string_view category;
    VersionedView local;
    VersionedView remote;
};

/// A resolver's answer.
class Resolution {
public:
    static Resolution keep_local() { return Resolution(BHS_RESOLVE_LOCAL, {}); }
    static Resolution keep_remote() { return Resolution(BHS_RESOLVE_REMOTE, {}); }
    /// Store `value` as a new version superseding both.
    static Resolution merged(Bytes value) { return Resolution(BHS_RESOLVE_MERGED, std::move(value)); }

    std::uint32_t choice() const noexcept { return choice_; }
    const Bytes &value() const noexcept { return value_; }

private:
    Resolution(std::uint32_t choice, Bytes value) : choice_(choice), value_(std::move(value)) {}
    std::uint32_t choice_;
    Bytes value_;
};

/// A conflict resolver. Runs on the node's engine thread.
using Resolver = std::function<Resolution(const Conflict &)>;

/// An event from the node (kinds: BHS_EVENT_* in include/bhsync.h). Fields a kind does
/// not use are zero or empty.
struct Event {
    enum Kind : std::uint32_t {
        PeerUp = BHS_EVENT_PEER_UP,
        PeerDown = BHS_EVENT_PEER_DOWN,
        Updated = BHS_EVENT_UPDATED,
        Streamed = BHS_EVENT_STREAMED,
        SyncFinished = BHS_EVENT_SYNC_FINISHED,
        Fatal = BHS_EVENT_FATAL,
        ConflictResolved = BHS_EVENT_CONFLICT,
        /// The Raft group of the strong `category` has a new leader, `peer` (all zero
        /// when unknown), in term `count`.
        Leader = BHS_EVENT_LEADER,
        /// The strong `category` lost (`!reachable()`) or regained a quorum of its Raft
        /// group. With an empty `category`: membership saw this node on a minority side
        /// (or a majority reachable again); `count` members are reachable, `message`
        /// says how many are known.
        Partition = BHS_EVENT_PARTITION,
        /// Membership (SWIM) counts `peer` as a live member: it joined or came back.
        MemberUp = BHS_EVENT_MEMBER_UP,
        /// Membership suspects `peer`; it may still refute.
        MemberSuspect = BHS_EVENT_MEMBER_SUSPECT,
        /// Membership declared `peer` dead.
        MemberDead = BHS_EVENT_MEMBER_DEAD,
        /// `peer` left the membership on purpose.
        MemberLeft = BHS_EVENT_MEMBER_LEFT,
        /// This node refuted a suspicion about itself; `count` is its new incarnation.
        MemberRefuted = BHS_EVENT_MEMBER_REFUTED,
    };
    /// A Kind, or a value from a newer library (skip what you do not know).
    std::uint32_t kind = 0;
    /// The peer (PeerUp, PeerDown, SyncFinished), the leader (Leader) or the member
    /// (MemberUp, MemberSuspect, MemberDead, MemberLeft).
    NodeId peer{};
    std::string category;
    Bytes key;
    std::string message;
    /// Entries applied (SyncFinished) or streamed (Streamed), the term (Leader), the
    /// members reachable (Partition without a category), the new incarnation
    /// (MemberRefuted).
    std::uint64_t count = 0;
    std::uint32_t sync_id = 0;
    std::uint32_t flags = 0;

    bool failed() const noexcept { return (flags & BHS_EVENT_FLAG_FAILED) != 0; }
    bool merged() const noexcept { return (flags & BHS_EVENT_FLAG_MERGED) != 0; }
    /// A Partition event reports a quorum (or a majority) reachable again.
    bool reachable() const noexcept { return kind == Partition && (flags & BHS_EVENT_FLAG_REACHABLE) != 0; }
};

namespace detail {
inline VersionedView view_of(const bhs_versioned &v) {
    VersionedView view;
    view.value = ByteView(v.value, v.value_len);
    view.hlc = v.hlc;
    view.counter = v.counter;
    std::memcpy(view.origin.data(), v.origin, 32);
    view.tombstone = v.tombstone != 0;
    return view;
}

/// The C callback: calls the host's std::function, never lets an exception out.
inline int32_t resolve_trampoline(void *user_data, const bhs_conflict *c, bhs_resolution *out) noexcept {
    try {
        const auto &resolver = *static_cast<const Resolver *>(user_data);
        Conflict conflict{std::string_view(reinterpret_cast<const char *>(c->category), c->category_len),
                          view_of(c->local), view_of(c->remote)};
        Resolution answer = resolver(conflict);
        if (answer.choice() == BHS_RESOLVE_MERGED &&
            bhs_buf_copy(answer.value().data(), answer.value().size(), &out->merged) != BHS_OK) {
            return -2;
        }
        out->choice = answer.choice();
        return 0;
    } catch (...) {
        return -1;
    }
}

inline Event event_of(bhs_event &raw) {
    Event event;
    event.kind = raw.kind;
    std::memcpy(event.peer.data(), raw.peer, 32);
    event.category = take_text(raw.category);
    event.key = take(raw.key);
    event.message = take_text(raw.message);
    event.count = raw.count;
    event.sync_id = raw.sync_id;
    event.flags = raw.flags;
    bhs_event_free(&raw);
    return event;
}
}  // namespace detail

/// A running node. Move-only; the destructor closes it (stops its engine, frees the C
/// handle) — call close() yourself to see an error. All methods may be called from
/// several threads at once, except moving, close() and destruction.
class Node {
public:
    /// Opens a node from `config` (copied: the Config may be destroyed afterwards).
    static Node open(const Config &config) {
        bhs_node *raw = nullptr;
        detail::check(bhs_node_open(config.get(), &raw));
        return Node(raw);
    }

    Node(Node &&other) noexcept
        : handle_(std::exchange(other.handle_, nullptr)), resolvers_(std::move(other.resolvers_)) {}
    Node &operator=(Node &&other) noexcept {
        if (this != &other) {
            close_quietly();
            handle_ = std::exchange(other.handle_, nullptr);
            resolvers_ = std::move(other.resolvers_);
        }
        return *this;
    }
    Node(const Node &) = delete;
    Node &operator=(const Node &) = delete;
    ~Node() { close_quietly(); }

    /// Stops the engine and frees the handle; throws if the engine had failed. The
    /// Node is empty afterwards (further calls throw BHS_INVALID_ARGUMENT).
    void close() {
        bhs_status status = bhs_node_close(std::exchange(handle_, nullptr));
        resolvers_.clear();  // the engine is gone: no resolver can run any more
        detail::check(status);
    }

    /// Stops the engine but keeps the handle: later calls throw Error(BHS_CLOSED).
    void shutdown() { detail::check(bhs_node_shutdown(handle_)); }

    NodeId id() const {
        NodeId id{};
        detail::check(bhs_node_id(handle_, id.data()));
        return id;
    }

    /// The address the node listens on ("127.0.0.1:40123").
    std::string local_addr() const {
        bhs_buf buf{};
        detail::check(bhs_node_local_addr(handle_, &buf));
        return detail::take_text(buf);
    }

    /// Dials `addr` ("host:port") and keeps it connected.
    void connect(std::string_view addr) { detail::check(bhs_node_connect(handle_, detail::c_str(addr).c_str())); }

    void put(std::string_view category, ByteView key, ByteView value) {
        detail::check(bhs_put(handle_, detail::c_str(category).c_str(), key.data(), key.size(), value.data(),
                              value.size()));
    }

    /// The live value of `key`, or std::nullopt when absent or deleted.
    std::optional<Bytes> get(std::string_view category, ByteView key) const {
        bhs_buf buf{};
        bhs_status status = bhs_get(handle_, detail::c_str(category).c_str(), key.data(), key.size(), &buf);
        if (status == BHS_NOT_FOUND) return std::nullopt;
        detail::check(status);
        return detail::take(buf);
    }

    /// Deletes `key`; false when there was no live value.
    bool erase(std::string_view category, ByteView key) {
        bhs_status status = bhs_delete(handle_, detail::c_str(category).c_str(), key.data(), key.size());
        if (status == BHS_NOT_FOUND) return false;
        detail::check(status);
        return true;
    }

    /// Adds `delta` to a counter (merge=crdt category); returns the new value.
    std::int64_t counter_add(std::string_view category, ByteView key, std::int64_t delta) {
        std::int64_t value = 0;
        detail::check(bhs_counter_add(handle_, detail::c_str(category).c_str(), key.data(), key.size(), delta, &value));
        return value;
    }

    std::int64_t counter_get(std::string_view category, ByteView key) const {
        std::int64_t value = 0;
        detail::check(bhs_counter_get(handle_, detail::c_str(category).c_str(), key.data(), key.size(), &value));
        return value;
    }

    /// The node's state hash: equal on two nodes exactly when they hold the same state.
    Hash state_hash() const {
        Hash hash{};
        detail::check(bhs_state_hash(handle_, nullptr, hash.data()));
        return hash;
    }

    /// The Merkle root of one category.
    Hash category_root(std::string_view category) const {
        Hash hash{};
        detail::check(bhs_state_hash(handle_, detail::c_str(category).c_str(), hash.data()));
        return hash;
    }

    /// Network time: the node's clock corrected by the offset its peers agree on, never
    /// going backwards between two calls; the local clock while too few peers agree.
    NetworkTime network_time() const {
        NetworkTime time;
        detail::check(bhs_network_time(handle_, &time.unix_ms, &time.offset_ms));
        return time;
    }

    /// Appends `transactions` to a mode=chain category (the node needs a data_dir) as
    /// one block signed by this node, on its current head; returns the block once it is
    /// durable. Peers learn it by the chain's sync; fork choice keeps the highest chain
    /// (ties: the lowest head id), so a block on a losing branch may later leave the
    /// main chain. Throws Error(BHS_INVALID_ARGUMENT) over BHS_MAX_BLOCK_TRANSACTIONS or
    /// BHS_MAX_TRANSACTION_LEN, or for a category that is not the node's chain.
    ChainHead chain_append(std::string_view category, const std::vector<ByteView> &transactions) {
        std::vector<const std::uint8_t *> pointers;
        std::vector<std::size_t> lengths;
        pointers.reserve(transactions.size());
        lengths.reserve(transactions.size());
        for (const ByteView &transaction : transactions) {
            pointers.push_back(transaction.data());
            lengths.push_back(transaction.size());
        }
        ChainHead head;
        detail::check(bhs_chain_append(handle_, detail::c_str(category).c_str(), pointers.data(), lengths.data(),
                                       transactions.size(), &head.height, head.id.data()));
        return head;
    }

    /// As above, from any range of what a ByteView is made from (strings, Bytes, …).
    template <typename Range>
    ChainHead chain_append(std::string_view category, const Range &transactions) {
        return chain_append(category, std::vector<ByteView>(std::begin(transactions), std::end(transactions)));
    }

    /// The head of a chain category: the last block of its main chain (genesis, height
    /// 0, on a fresh chain).
    ChainHead chain_head(std::string_view category) const {
        ChainHead head;
        detail::check(bhs_chain_head(handle_, detail::c_str(category).c_str(), &head.height, head.id.data()));
        return head;
    }

    /// The encoded block at `height` of the main chain (genesis at 0), or std::nullopt
    /// above the head. The encoding: a 176-byte header (height, timestamp ms, parent id,
    /// transactions' Merkle root, proposer key, Ed25519 signature; little endian), a u32
    /// transaction count, then each transaction as a u32 length and its bytes.
    std::optional<Bytes> chain_block(std::string_view category, std::uint64_t height) const {
        bhs_buf buf{};
        bhs_status status = bhs_chain_block(handle_, detail::c_str(category).c_str(), height, &buf);
        if (status == BHS_NOT_FOUND) return std::nullopt;
        detail::check(status);
        return detail::take(buf);
    }

    /// Anti-entropy now with `peer` (or every connected peer) and wait for it; throws
    /// Error(BHS_TIMEOUT) when `timeout` passes first.
    SyncReport sync(std::optional<NodeId> peer = std::nullopt,
                    std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
        SyncReport report{};
        detail::check(bhs_sync(handle_, peer ? peer->data() : nullptr, clamp_ms(timeout), &report));
        return report;
    }

    /// The next event, waiting up to `timeout`; std::nullopt when none came.
    std::optional<Event> poll_event(std::chrono::milliseconds timeout = std::chrono::milliseconds(0)) {
        bhs_event raw{};
        bhs_status status = bhs_poll_event(handle_, &raw, clamp_ms(timeout));
        if (status == BHS_TIMEOUT) return std::nullopt;
        detail::check(status);
        return detail::event_of(raw);
    }

    /// Registers `resolver` for a merge=custom category (replacing an earlier one). It
    /// runs on the engine thread; it must not call into this node.
    void set_conflict_resolver(std::string_view category, Resolver resolver) {
        auto owned = std::make_unique<Resolver>(std::move(resolver));
        std::lock_guard<std::mutex> lock(*resolvers_mutex_);
        detail::check(bhs_set_conflict_resolver(handle_, detail::c_str(category).c_str(), detail::resolve_trampoline,
                                                owned.get()));
        // The previous resolver of this category is no longer called once the C call
        // returns, so it can be released now.
        resolvers_[std::string(category)] = std::move(owned);
    }

    Metrics metrics() const {
        Metrics metrics{};
        detail::check(bhs_metrics(handle_, &metrics));
        return metrics;
    }

    /// The health report as JSON.
    std::string health_json() const {
        bhs_buf buf{};
        detail::check(bhs_health_json(handle_, &buf));
        return detail::take_text(buf);
    }

    /// The C handle (still owned by this object).
    bhs_node *get() const noexcept { return handle_; }

private:
    explicit Node(bhs_node *handle) : handle_(handle) {}

    static std::uint32_t clamp_ms(std::chrono::milliseconds timeout) {
        auto ms = timeout.count();
        return ms <= 0 ? 0u : ms >= 0xffffffffLL ? 0xffffffffu : static_cast<std::uint32_t>(ms);
    }

    void close_quietly() noexcept {
        if (handle_ != nullptr) bhs_node_close(std::exchange(handle_, nullptr));
        resolvers_.clear();
    }

    bhs_node *handle_ = nullptr;
    // Resolvers outlive every call the engine makes to them: they are released after
    // the node is closed (close, destructor) or after their replacement is installed.
    std::map<std::string, std::unique_ptr<Resolver>> resolvers_;
    std::unique_ptr<std::mutex> resolvers_mutex_ = std::make_unique<std::mutex>();
};

/// Hex text of an id or hash (for logs and config values such as "allowlist").
inline std::string to_hex(const std::array<std::uint8_t, 32> &bytes) {
    static const char digits[] = "0123456789abcdef";
    std::string text;
    text.reserve(64);
    for (std::uint8_t byte : bytes) {
        text.push_back(digits[byte >> 4]);
        text.push_back(digits[byte & 15]);
    }
    return text;
}

}  // namespace bhsync

#endif  // BHSYNC_HPP

/// A token bucket on a monotonic clock given by the caller (nanoseconds, as
/// `NIODeadline.now().uptimeNanoseconds`): it holds at most `burst` tokens, starts full, and
/// earns one every `interval` nanoseconds. Whole tokens only, in integers: no rounding drifts,
/// and time that earned no whole token yet is carried over to the next call, so that over any
/// stretch of time at most `burst + elapsed / interval` tokens are taken (and what `charge`
/// took beyond them, owed at the stretch's end). Pure, so that its
/// arithmetic is tested with a clock of the test's choosing (`TokenBucketTests`).
struct TokenBucket {
    let burst: Int
    /// Nanoseconds per token (at least 1).
    let interval: UInt64
    private(set) var tokens: Int
    /// The time up to which tokens have been credited: `now` when the bucket is full (a full
    /// bucket earns nothing), otherwise behind it by less than one `interval`.
    private var creditedUntil: UInt64

    /// Starts with `tokens` (at most `burst`; full when nil).
    init(burst: Int, interval: UInt64, now: UInt64, tokens: Int? = nil) {
        precondition(burst >= 1 && interval >= 1, "a token bucket needs a burst and an interval of at least 1")
        self.burst = burst
        self.interval = interval
        self.tokens = min(tokens ?? burst, burst)
        creditedUntil = now
    }

    /// `perSecond` tokens a second (at least 1, at most 10⁹).
    init(burst: Int, perSecond: Int, now: UInt64, tokens: Int? = nil) {
        precondition(perSecond >= 1 && perSecond <= 1_000_000_000, "a rate of 1 to 10^9 tokens a second")
        self.init(burst: burst, interval: 1_000_000_000 / UInt64(perSecond), now: now, tokens: tokens)
    }

    /// The tokens at `now` (negative: a debt).
    mutating func available(now: UInt64) -> Int {
        refill(now: now)
        return tokens
    }

    /// Takes one token if there is one at `now`: true when the caller may go ahead.
    mutating func take(now: UInt64) -> Bool {
        refill(now: now)
        guard tokens > 0 else { return false }
        tokens -= 1
        return true
    }

    /// Takes one token whether or not there is one: the bucket may go into debt, and gives
    /// nothing to `take` until the debt is repaid at its rate, so that over any stretch at most
    /// `burst + elapsed / interval` tokens, plus the debt still owed at its end, are taken. For
    /// work that must go ahead now but still counts against the rate (`UpstreamBudget`); the
    /// caller bounds the debt (it starts such work only when `inDebt` is false).
    mutating func charge(now: UInt64) {
        refill(now: now)
        tokens -= 1
    }

    /// Whether more has been charged than earned (`charge`).
    mutating func inDebt(now: UInt64) -> Bool {
        refill(now: now)
        return tokens < 0
    }

    /// Nanoseconds from `now` until the next token, 0 when one is there (no token is taken).
    mutating func untilNext(now: UInt64) -> UInt64 {
        refill(now: now)
        guard tokens <= 0 else { return 0 }
        return UInt64(1 - tokens) * interval - (now > creditedUntil ? now - creditedUntil : 0)
    }

    private mutating func refill(now: UInt64) {
        // A monotonic clock does not go back; if a caller's did, nothing is earned meanwhile.
        guard now > creditedUntil else { return }
        let missing = UInt64(burst - tokens)
        let elapsed = now - creditedUntil
        let earned = elapsed / interval
        if earned >= missing {
            tokens = burst
            creditedUntil = now
        } else {
            // earned < missing = burst + the debt, which callers keep small: no overflow.
            tokens += Int(earned)
            creditedUntil += earned * interval
        }
    }
}

<?php
// A subscriber that misses nothing across its own restarts and zpubd's (docs/history.md); the
// same protocol as examples/python/resuming_subscriber.py, with the PECL zmq extension.
//
// It keeps the history sequence of the last message it handled in a file. On start with a
// position saved, and each time its connection to zpubd comes back (zpubd restarted: what zpubd
// still held for it went with the old connection, and what was published before it subscribed
// again never came), it asks zpubd to replay what it missed (REPLAY, then HISTORY pages). Live,
// it learns each message's sequence from the sequence markers ($zpub/seq/<topic>) that follow
// kept messages, and skips the kept messages a replay already gave it: no gap, no duplicate.
// zpubd must keep the prefix: zpubd --history orders. (with --state-dir to keep it across
// zpubd's own restarts too).
//
// Run: php resuming_subscriber.php [count]   (stops after count messages; forever without it)
// Environment: ZPUB_XPUB, ZPUB_CONTROL, ZPUB_PREFIX (orders.), ZPUB_POSITION_FILE (./position)

$xpub = getenv("ZPUB_XPUB") ?: "tcp://127.0.0.1:5556";
$control = getenv("ZPUB_CONTROL") ?: "tcp://127.0.0.1:5555";
$prefix = getenv("ZPUB_PREFIX") ?: "orders.";
$positionFile = getenv("ZPUB_POSITION_FILE") ?: "position";
$count = isset($argv[1]) ? (int)$argv[1] : null;
const SEQ = '$zpub/seq/';
const SNAPSHOT = '$zpub/snapshot/';

$context = new ZMQContext();
$sub = $context->getSocket(ZMQ::SOCKET_SUB);
// A connection lost and made again is the cue to replay: a SUB alone reconnects in silence.
$sub->monitor("inproc://resuming-subscriber-monitor", ZMQ::EVENT_CONNECTED | ZMQ::EVENT_DISCONNECTED);
$monitor = $context->getSocket(ZMQ::SOCKET_PAIR);
$monitor->connect("inproc://resuming-subscriber-monitor");
$sub->connect($xpub);
$sub->setSockOpt(ZMQ::SOCKOPT_SUBSCRIBE, $prefix);
$sub->setSockOpt(ZMQ::SOCKOPT_SUBSCRIBE, SEQ . $prefix); // the sequence of each kept message
$position = file_exists($positionFile) ? (int)file_get_contents($positionFile) : null;
$replayedThrough = 0; // kept messages up to this sequence came in a replay
$keptPrefixes = []; // what history keeps, as the last replay said
$marker = null; // the marker topic of the replay under way, until it arrives live
$handled = 0;

function say(string $text): void
{
    fwrite(STDERR, $text . "\n");
}

// One request to zpubd's control socket, asked again while zpubd does not answer (it may be
// starting); exits with zpubd's message if the answer is an error.
function ask(string $request): array
{
    global $context, $control;
    while (true) {
        $req = $context->getSocket(ZMQ::SOCKET_REQ);
        $req->setSockOpt(ZMQ::SOCKOPT_LINGER, 0);
        $req->setSockOpt(ZMQ::SOCKOPT_RCVTIMEO, 10000);
        $req->connect($control);
        $req->send($request);
        $text = $req->recv();
        unset($req);
        if ($text === false) {
            say("zpubd at $control did not answer within 10 s (is it running?); asking again");
            continue;
        }
        $reply = json_decode($text, true);
        if (isset($reply["error"])) {
            say("zpubd: " . $reply["error"]["message"]);
            exit(1);
        }
        return $reply;
    }
}

// Prints a message and saves its position (null: a message history does not keep). True when
// `count` messages have been handled.
function savePosition(int $sequence): void
{
    global $positionFile, $position;
    file_put_contents($positionFile . ".new", (string)$sequence);
    rename($positionFile . ".new", $positionFile);
    $position = $sequence;
}

function handle(?int $sequence, array $frames): bool
{
    global $handled, $count;
    echo implode(" ", $frames), "\n";
    if ($sequence !== null) {
        savePosition($sequence);
    }
    $handled++;
    return $count !== null && $handled >= $count;
}

// Control replies carry messages exactly: payload frames in base64, and the topic's bytes in
// topic_base64 when it is not UTF-8.
function stored(array $entry): array
{
    $topic = isset($entry["topic_base64"]) ? base64_decode($entry["topic_base64"]) : $entry["topic"];
    return array_merge([$topic], array_map("base64_decode", $entry["payload"]));
}

// What history could not give back: evicted (its bounds), or never kept.
function tellLosses(array $reply): void
{
    global $prefix;
    if (!empty($reply["gap"])) {
        say("missed {$reply["gap"]["from"]} to {$reply["gap"]["to"]}: no longer kept");
    }
    foreach ($reply["not_kept"] ?? [] as $lost) {
        say("{$lost["from"]} to {$lost["to"]} were not kept ({$lost["reason"]}): lost, if any was under $prefix");
    }
}

// Handles every kept message after `since`; live messages go on after the marker. True when
// `count` messages have been handled.
function replay(int $since): bool
{
    global $sub, $prefix, $marker, $replayedThrough, $keptPrefixes;
    if ($marker !== null) {
        $sub->setSockOpt(ZMQ::SOCKOPT_UNSUBSCRIBE, $marker);
    }
    $token = bin2hex(random_bytes(16));
    $marker = SNAPSHOT . $token;
    $sub->setSockOpt(ZMQ::SOCKOPT_SUBSCRIBE, $marker); // after the data prefix: the broker waits for it
    $reply = ask("REPLAY $token $since $prefix");
    if (isset($reply["warning"])) {
        say("zpubd: " . $reply["warning"]);
    }
    if ($reply["through"] < $since) {
        // zpubd restarted without its state directory: its numbers start again from 1.
        say("zpubd's numbering started again (it is at {$reply["through"]}, below $since): replaying all it keeps");
        savePosition(0); // its new numbers are all new to us, now and after our own restart
        return replay(0);
    }
    tellLosses($reply);
    $replayedThrough = $reply["through"];
    $keptPrefixes = $reply["prefixes"];
    $entries = $reply["messages"];
    $replayed = 0;
    while (true) {
        foreach ($entries as $entry) {
            $replayed++;
            if (handle($entry["seq"], stored($entry))) {
                return true;
            }
        }
        if (!$reply["more"] || !$entries) {
            say("replayed $replayed kept message(s) after $since, through $replayedThrough; live from here");
            return false;
        }
        $last = end($entries)["seq"];
        $reply = ask("HISTORY since $last until $replayedThrough $prefix");
        tellLosses($reply);
        $entries = $reply["messages"];
    }
}

// A message from the live stream; a kept one a replay gave already is skipped.
function live(?int $sequence, array $frames): bool
{
    global $position, $replayedThrough;
    if ($sequence !== null && $sequence <= max($position ?? 0, $replayedThrough)) {
        return false;
    }
    return handle($sequence, $frames);
}

function startsWith(string $text, string $prefix): bool
{
    return strncmp($text, $prefix, strlen($prefix)) === 0;
}

function startsWithAny(string $text, array $prefixes): bool
{
    foreach ($prefixes as $prefix) {
        if (startsWith($text, $prefix)) {
            return true;
        }
    }
    return false;
}

if ($position !== null && replay($position)) {
    exit(0);
}
// The SUB alone: PECL zmq 2.x under PHP 8 gives every socket in a ZMQPoll the same key, so a
// second one added is never reported. The monitor is looked at, without waiting, at each turn.
$poll = new ZMQPoll();
$poll->add($sub, ZMQ::POLL_IN);
$disconnected = false;
$pending = null; // a data message, until we know whether a sequence marker follows it
$pendingSince = 0.0;
while (true) {
    while (($monitor->getSockOpt(ZMQ::SOCKOPT_EVENTS) & ZMQ::POLL_IN) !== 0) {
        $event = $monitor->recvEvent()["event"];
        if ($event === ZMQ::EVENT_DISCONNECTED) {
            $disconnected = true;
        } elseif ($event === ZMQ::EVENT_CONNECTED && $disconnected) {
            $disconnected = false;
            if ($position === null) {
                say("connected to zpubd again; no kept message handled yet, so nothing to replay");
                continue;
            }
            if (replay($position)) {
                break 2;
            }
            // A message whose marker went with the old connection: the replay had it if kept.
            if ($pending !== null && !startsWithAny($pending[0], $keptPrefixes) && live(null, $pending)) {
                break 2;
            }
            $pending = null;
        }
    }
    $readable = $writable = [];
    if ($poll->poll($readable, $writable, 100) === 0) {
        // A message with no marker behind it within a second is not kept. Not while
        // disconnected: its marker may have gone with the connection, and the replay brings it.
        if ($pending !== null && !$disconnected && microtime(true) - $pendingSince >= 1.0) {
            if (live(null, $pending)) {
                break;
            }
            $pending = null;
        }
        continue;
    }
    $frames = $sub->recvMulti();
    if (startsWith($frames[0], SNAPSHOT)) {
        if ($frames[0] === $marker) {
            $sub->setSockOpt(ZMQ::SOCKOPT_UNSUBSCRIBE, $marker);
            $marker = null;
        }
        continue; // a replay's marker: not a message
    }
    if (startsWith($frames[0], SEQ)) {
        if ($pending !== null && substr($frames[0], strlen(SEQ)) === $pending[0]) {
            $done = live((int)$frames[1], $pending);
            $pending = null;
            if ($done) {
                break;
            }
        }
        continue;
    }
    if ($pending !== null) {
        if (live(null, $pending)) {
            break;
        }
        $pending = null;
    }
    $pending = $frames;
    $pendingSince = microtime(true);
}

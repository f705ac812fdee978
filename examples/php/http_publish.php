<?php
// Publishes a message through zpubd's HTTP gateway from plain PHP: no ZeroMQ extension, and not
// even the curl extension (PHP's built-in HTTP stream wrapper does the POST). The topic must be
// under [http] publish_prefixes (docs/http.md, "Publishing over HTTP").
// Run: php http_publish.php TOPIC JSON-OR-TEXT
// Environment: ZPUB_HTTP (http://127.0.0.1:8080), ZPUB_TOKEN (if the prefix needs one)

$url = (getenv("ZPUB_HTTP") ?: "http://127.0.0.1:8080") . "/publish";
$topic = $argv[1];
// A JSON argument is published as that JSON value, exactly as written (one frame of its JSON
// text: put in the body as it is, since decoding and encoding it again in PHP turns {} into
// []), anything else as a string: what a slow job's result usually looks like.
json_decode($argv[2]);
$payload = json_last_error() === JSON_ERROR_NONE ? $argv[2] : json_encode($argv[2]);
$body = '{"topic":' . json_encode($topic) . ',"payload":' . $payload . '}';
$headers = "Content-Type: application/json\r\n";
if (getenv("ZPUB_TOKEN")) {
    $headers .= "Authorization: Bearer " . getenv("ZPUB_TOKEN") . "\r\n";
}
$context = stream_context_create(["http" => [
    "method" => "POST",
    "header" => $headers,
    "content" => $body,
    "ignore_errors" => true, // read the gateway's JSON error instead of a bare warning
    "timeout" => 10,
]]);
$reply = @file_get_contents($url, false, $context);
if ($reply === false && !isset($http_response_header[0])) {
    // No answer at all (nothing listening, a timeout): not zpubd's refusal.
    $error = error_get_last()["message"] ?? "no answer";
    fwrite(STDERR, "cannot reach zpubd at $url: $error\n");
    exit(1);
}
$status = (int)explode(" ", $http_response_header[0])[1];
if ($status !== 200) {
    fwrite(STDERR, "zpubd refused ($status): $reply");
    exit(1);
}
echo $reply;

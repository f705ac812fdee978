<?php
// Publishes a message through zpubd's HTTP gateway with PHP's curl extension (php-curl): no
// ZeroMQ extension needed. The topic must be one the token may publish to (a JWT's publish
// claim, or [http] publish_prefixes); docs/http.md, "Publishing over HTTP".
// Run: php http_publish_curl.php TOPIC JSON-OR-TEXT
// Environment: ZPUB_HTTP (http://127.0.0.1:8080, or https://...), ZPUB_TOKEN (a JWT or a static
// token, if needed), ZPUB_CA_FILE (the CA that signed the gateway's certificate, for https)

$url = (getenv("ZPUB_HTTP") ?: "http://127.0.0.1:8080") . "/publish";
[$_, $topic, $argument] = $argv;
// A JSON argument goes as written (decoded and encoded again in PHP, {} became []).
json_decode($argument);
$payload = json_last_error() === JSON_ERROR_NONE ? $argument : json_encode($argument);
$headers = ["Content-Type: application/json"];
if (getenv("ZPUB_TOKEN")) {
    $headers[] = "Authorization: Bearer " . getenv("ZPUB_TOKEN");
}
$curl = curl_init($url);
curl_setopt_array($curl, [
    CURLOPT_POST => true,
    CURLOPT_POSTFIELDS => '{"topic":' . json_encode($topic) . ',"payload":' . $payload . '}',
    CURLOPT_HTTPHEADER => $headers,
    CURLOPT_RETURNTRANSFER => true,
    CURLOPT_TIMEOUT => 10,
]);
if (getenv("ZPUB_CA_FILE")) {
    curl_setopt($curl, CURLOPT_CAINFO, getenv("ZPUB_CA_FILE"));
}
$reply = curl_exec($curl);
if ($reply === false) {
    fwrite(STDERR, "cannot reach zpubd at $url: " . curl_error($curl) . "\n");
    exit(1);
}
$status = curl_getinfo($curl, CURLINFO_RESPONSE_CODE);
if ($status !== 200) {
    fwrite(STDERR, "zpubd refused ($status): $reply");
    exit(1);
}
echo $reply;

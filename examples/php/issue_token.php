<?php
// How a PHP web app issues a zpub gateway token (a JWT, HS256) for one of its users: plain PHP,
// no library. The gateway checks it with the same secret ([http] jwt_secret_file) and lets the
// user subscribe and publish only under the prefixes the app wrote in it (docs/http.md, "JWT
// credentials").
// Run: php issue_token.php SECRET_FILE USER SECONDS SUBSCRIBE_PREFIXES PUBLISH_PREFIXES
//   e.g. php issue_token.php /etc/zpub/jwt.secret alice 3600 '["user.alice."]' '["chat."]'
// Prints the token; a page hands it to its WebSocket or EventSource as ?access_token=.

function base64url(string $bytes): string {
    return rtrim(strtr(base64_encode($bytes), "+/", "-_"), "=");
}

[$_, $secretFile, $user, $seconds, $subscribe, $publish] = $argv;
$secret = rtrim(file_get_contents($secretFile), "\r\n");
$header = ["alg" => "HS256", "typ" => "JWT"];
$claims = [
    "sub" => $user,
    "exp" => time() + (int)$seconds,   // required: the gateway refuses tokens that never expire
    "subscribe" => json_decode($subscribe),
    "publish" => json_decode($publish),
];
$signed = base64url(json_encode($header)) . "." . base64url(json_encode($claims));
echo $signed . "." . base64url(hash_hmac("sha256", $signed, $secret, true)) . "\n";

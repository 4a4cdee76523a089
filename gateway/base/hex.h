/*
 * hex: the value of one hexadecimal digit, for the places that decode %XX escapes and hex keys
 * (config dsn and key hashes, the REST facade's paths, upstream list JSON, peer strings, secret
 * files). Pure.
 */
#ifndef A3D_GATEWAY_HEX_H
#define A3D_GATEWAY_HEX_H

/* 0..15 for '0'-'9', 'a'-'f', 'A'-'F'; -1 for any other value (EOF and bytes above 127 too). */
int gw_hex_digit(int c);

#endif

/* client/json.h: gortctl --json: any gort.v1 message as JSON, driven by protobuf-c's descriptors. */
#ifndef GORTCTL_JSON_H
#define GORTCTL_JSON_H

#include <stdio.h>

#include <protobuf-c/protobuf-c.h>

/* Writes m as one JSON object and a newline: proto field names, every field
 * (defaults included, so scripts need not know proto3's omissions), 64-bit
 * integers as numbers, bytes as base64 (proto3's JSON mapping), unset
 * messages and oneof members left out. This function can't fail (stdio
 * errors show at fclose/fflush). */
void json_print(FILE *f, const ProtobufCMessage *m);

#endif

/* pprof_fields.h -- field numbers of pprof's profile.proto, shared by the writer
 * (write/pprof.c) and the memtally command's reader (tools/profile.c)
 *
 * From github.com/google/pprof, proto/profile.proto. Only what memtally
 * writes or reads is named. Header only, no dependencies: the command
 * includes it without linking the library. */
#ifndef MT_PPROF_FIELDS_H
#define MT_PPROF_FIELDS_H

/* Profile */
#define PB_PROFILE_SAMPLE_TYPE 1        /* ValueType, repeated */
#define PB_PROFILE_SAMPLE 2             /* Sample, repeated */
#define PB_PROFILE_MAPPING 3            /* Mapping, repeated */
#define PB_PROFILE_LOCATION 4           /* Location, repeated */
#define PB_PROFILE_FUNCTION 5           /* Function, repeated */
#define PB_PROFILE_STRING_TABLE 6       /* string, repeated; [0] is "" */
#define PB_PROFILE_TIME_NANOS 9
#define PB_PROFILE_DURATION_NANOS 10
#define PB_PROFILE_PERIOD_TYPE 11       /* ValueType */
#define PB_PROFILE_PERIOD 12
#define PB_PROFILE_COMMENT 13           /* string index, repeated */
#define PB_PROFILE_DEFAULT_SAMPLE_TYPE 14 /* string index */

/* ValueType */
#define PB_VALUE_TYPE_TYPE 1            /* string index */
#define PB_VALUE_TYPE_UNIT 2            /* string index */

/* Sample */
#define PB_SAMPLE_LOCATION_ID 1         /* packed, leaf first */
#define PB_SAMPLE_VALUE 2               /* packed, one per sample type */
#define PB_SAMPLE_LABEL 3               /* Label, repeated */

/* Label */
#define PB_LABEL_KEY 1                  /* string index */
#define PB_LABEL_STR 2                  /* string index */
#define PB_LABEL_NUM 3
#define PB_LABEL_NUM_UNIT 4             /* string index */

/* Mapping */
#define PB_MAPPING_ID 1
#define PB_MAPPING_MEMORY_START 2
#define PB_MAPPING_MEMORY_LIMIT 3
#define PB_MAPPING_FILE_OFFSET 4
#define PB_MAPPING_FILENAME 5           /* string index */
#define PB_MAPPING_BUILD_ID 6           /* string index */
#define PB_MAPPING_HAS_FUNCTIONS 7
#define PB_MAPPING_HAS_FILENAMES 8
#define PB_MAPPING_HAS_LINE_NUMBERS 9

/* Location */
#define PB_LOCATION_ID 1
#define PB_LOCATION_MAPPING_ID 2
#define PB_LOCATION_ADDRESS 3
#define PB_LOCATION_LINE 4              /* Line, repeated: innermost first */

/* Line */
#define PB_LINE_FUNCTION_ID 1
#define PB_LINE_LINE 2

/* Function */
#define PB_FUNCTION_ID 1
#define PB_FUNCTION_NAME 2              /* string index */
#define PB_FUNCTION_SYSTEM_NAME 3       /* string index */
#define PB_FUNCTION_FILENAME 4          /* string index */

/* wire types */
#define PB_WIRE_VARINT 0
#define PB_WIRE_FIXED64 1
#define PB_WIRE_BYTES 2
#define PB_WIRE_FIXED32 5

#endif

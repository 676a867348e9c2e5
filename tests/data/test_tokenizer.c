/* test_tokenizer.c — the byte tokenizer. */
#include "datatest.h"

static void test_roundtrip_all_bytes(void **state) {
    (void)state;
    char text[256], back[256];
    int32_t tok[256];
    for (int i = 0; i < 256; i++)
        text[i] = (char)(unsigned char)i;
    data_encode(text, 256, tok);
    for (int i = 0; i < 256; i++)
        assert_int_equal(tok[i], i); /* 0xE2 is 226, not -30, though char is signed here */
    assert_int_equal(data_decode(tok, 256, back), 0);
    assert_memory_equal(back, text, 256);
    assert_int_equal(DATA_VOCAB_SIZE, 256);
}

static void test_utf8_and_invalid(void **state) {
    (void)state;
    const char *s = "caf\xc3\xa9"; /* "café" in UTF-8: five byte tokens */
    int32_t tok[5];
    data_encode(s, 5, tok);
    const int32_t expect[5] = {99, 97, 102, 195, 169};
    assert_memory_equal(tok, expect, sizeof tok);

    const int32_t bad[5] = {104, -1, 256, 1000, 105};
    char out[6] = {0};
    assert_int_equal(data_decode(bad, 5, out), 3);
    assert_string_equal(out, "h???i");
}

int dtt_run_tokenizer(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_all_bytes),
        cmocka_unit_test(test_utf8_and_invalid),
    };
    return cmocka_run_group_tests_name("data_tokenizer", tests, NULL, NULL);
}

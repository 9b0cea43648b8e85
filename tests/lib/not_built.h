/* SPDX-License-Identifier: MIT */
/*
 * T_NOT_BUILT_MAIN(NAME): the whole program of a format's test in a build
 * without that format (one-format configurations): one test, skipped, in a
 * group named NAME. Include after cmocka.h.
 */
#ifndef S2MMU_TESTS_NOT_BUILT_H
#define S2MMU_TESTS_NOT_BUILT_H

#define T_NOT_BUILT_MAIN(name)                                                          \
	static void test_not_built(void **state)                                        \
	{                                                                               \
		(void)state;                                                            \
		skip();                                                                 \
	}                                                                               \
                                                                                        \
	int main(void)                                                                  \
	{                                                                               \
		const struct CMUnitTest tests[] = { cmocka_unit_test(test_not_built) }; \
                                                                                        \
		return cmocka_run_group_tests_name(name, tests, NULL, NULL);            \
	}

#endif

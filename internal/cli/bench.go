package cli

func cmdBench(e *env, args []string) int {
	return usageErr(e, "bench is not built yet")
}

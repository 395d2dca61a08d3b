// goheap.go -- a Go program whose heap profile memtally must read
package main

import (
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
)

type entry struct {
	key   string
	value []byte
}

var index []*entry

//go:noinline
func buildIndex(n int) {
	for i := 0; i < n; i++ {
		index = append(index, &entry{key: "k" + strconv.Itoa(i), value: make([]byte, 256)})
	}
}

func main() {
	runtime.MemProfileRate = 1
	buildIndex(20000)
	runtime.GC()
	f, err := os.Create(os.Args[1])
	if err != nil {
		panic(err)
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		panic(err)
	}
	f.Close()
}

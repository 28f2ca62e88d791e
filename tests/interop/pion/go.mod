module sellcast/interop/pion

go 1.19

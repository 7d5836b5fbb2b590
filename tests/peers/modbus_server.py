"""A Modbus TCP server for tests, on 127.0.0.1.

Usage: /usr/bin/python3 modbus_server.py PORT [--garbage] [--log-requests]

Serves every unit id from one data store with fixed initial values (see INITIAL below), prints
"ready PORT" once it accepts connections and "client connected" for each client connection.
Holding register 900 answers writes with exception 4 (server device failure), so tests can check
how a rejected write is reported.

With --garbage it is a bad peer instead: it answers every request with bytes that are not a
valid reply to it (a wrong transaction id and function code).
"""

import asyncio
import logging
import sys
import time

# pymodbus 3.0 imports pyserial and serial_asyncio even for TCP: scripts/bootstrap installs
# python3-serial and python3-serial-asyncio for it.
from pymodbus.datastore import (
    ModbusSequentialDataBlock, ModbusServerContext, ModbusSlaveContext)
from pymodbus.server.async_io import ModbusConnectedRequestHandler, ModbusTcpServer

SIZE = 1000
REJECTING_REGISTER = 900

# Addresses are 0-based (zero_mode).
INITIAL = {
    "hr": {0: 123, 1: 0xFFFF, 2: 0x0001, 3: 0x0002, 10: 0x4148, 11: 0x0000},
    "ir": {0: 0x4148, 1: 0x0000, 2: 0x0000, 3: 0x4148, 5: 0x7FC0, 6: 0x0000},
    "co": {0: 1, 3: 0},
    "di": {0: 1, 1: 0},
}


class RejectingBlock(ModbusSequentialDataBlock):
    """Holding registers that refuse writes to one address with a device failure."""

    def setValues(self, address, values):  # noqa: N802 (pymodbus API)
        # pymodbus turns an exception here into a Modbus exception 4 reply.
        if address <= REJECTING_REGISTER < address + len(values):
            raise RuntimeError("register 900 rejects writes")
        super().setValues(address, values)


def block(cls, name):
    values = [0] * SIZE
    for addr, val in INITIAL[name].items():
        values[addr] = val
    return cls(0, values)


class LoggingHandler(ModbusConnectedRequestHandler):
    """Logs each connection, and with --log-requests each request with its connection's client
    port and the monotonic time, so a test can check that two clients never poll interleaved."""

    log_requests = False

    def connection_made(self, transport):
        peer = transport.get_extra_info("peername")
        self.client_port = peer[1] if peer else 0
        print("client connected", flush=True)
        super().connection_made(transport)

    def execute(self, request, *addr):
        if LoggingHandler.log_requests:
            print(f"request client={self.client_port} t={time.monotonic():.6f}", flush=True)
        return super().execute(request, *addr)


async def garbage(port):
    async def answer(reader, writer):
        print("client connected", flush=True)
        try:
            while await reader.read(260):
                writer.write(b"\xde\xad\x00\x00\x00\x07\x01\x03\x04\x00\x01\x00\x02")
                await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", port, reuse_address=True)
    print(f"ready {port}", flush=True)
    async with server:
        await server.serve_forever()


async def main(port):
    slave = ModbusSlaveContext(
        di=block(ModbusSequentialDataBlock, "di"),
        co=block(ModbusSequentialDataBlock, "co"),
        hr=block(RejectingBlock, "hr"),
        ir=block(ModbusSequentialDataBlock, "ir"),
        zero_mode=True,
    )
    context = ModbusServerContext(slaves=slave, single=True)
    server = ModbusTcpServer(context, address=("127.0.0.1", port), handler=LoggingHandler,
                             allow_reuse_address=True)
    task = asyncio.create_task(server.serve_forever())
    for _ in range(500):
        if server.server is not None:
            break
        await asyncio.sleep(0.01)
    print(f"ready {port}", flush=True)
    await task


if __name__ == "__main__":
    # pymodbus logs an error line for every client that disconnects; only real failures matter.
    logging.basicConfig(level=logging.CRITICAL)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    LoggingHandler.log_requests = "--log-requests" in sys.argv[2:]
    if "--garbage" in sys.argv[2:]:
        asyncio.run(garbage(int(sys.argv[1])))
    else:
        asyncio.run(main(int(sys.argv[1])))

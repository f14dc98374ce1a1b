"""A local SMTP server for the notifier's SMTP tests (aiosmtpd).

usage: smtp_server.py PORT DIR MODE
  accept  every message is written to DIR/<n>.eml and answered 250
  reject  every message is answered 550 (a permanent failure)
  flaky   the first message is answered 451 (a temporary failure), the rest accepted
Prints "ready" once it listens; runs until killed.
"""
import os
import sys
import time

from aiosmtpd.controller import Controller


class Handler:
    def __init__(self, directory, mode):
        self.directory = directory
        self.mode = mode
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        if self.mode == "reject":
            return "550 5.7.1 Message refused by the test server"
        if self.mode == "flaky" and self.count == 1:
            return "451 4.3.0 Try again later"
        n = len([f for f in os.listdir(self.directory) if f.endswith(".eml")])
        path = os.path.join(self.directory, "%04d.eml" % n)
        with open(path + ".tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(path + ".tmp", path)
        return "250 OK"


def main():
    port, directory, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    os.makedirs(directory, exist_ok=True)
    controller = Controller(Handler(directory, mode), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()

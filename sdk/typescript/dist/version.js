/** The SDK's version: always the gateway's (a test checks that they agree). */
export const VERSION = "0.1.0";

/** The SDK's version: always the gateway's (a test checks that they agree). */
export declare const VERSION = "0.1.0";

"""python-telegram-bot (Debian's python3-python-telegram-bot) runs its
standard long-polling loop against floodgate-sim botapi, unmodified: start-up
calls, handlers, uploads, downloads, callback queries, and the errors and 429s
it would get from Telegram.

usage: /usr/bin/python3 ptb_check.py <path to floodgate-sim>
"""
import io
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from framework_check import Checks, Simulator  # noqa: E402

from telegram import Bot, BotCommand, ChatAction, InlineKeyboardButton, InlineKeyboardMarkup  # noqa: E402
from telegram.error import BadRequest, ChatMigrated, RetryAfter, Unauthorized  # noqa: E402
from telegram.ext import CallbackQueryHandler, CommandHandler, Updater  # noqa: E402

ALPHA = "510001:AAptb-alpha-token-for-the-simulator"
BETA = "510002:AAptb-beta-token-for-the-simulator"
PHOTO = bytes(range(256)) * 40          # 10 KiB, every byte value
NOTES = "naïve notes\n".encode() * 100

SCENARIO = {
    "bots": [
        # Alpha does the ordinary bot's work; its per-chat limit is off so the
        # handler's quick calls are not rate-limited. Beta keeps Telegram's limits.
        {"token": ALPHA, "username": "alpha_ptb_bot", "limits": {"per_chat": "off"}},
        {"token": BETA, "username": "beta_ptb_bot"},
    ],
    "open_world": False,
    "users": [
        {"id": 42, "first_name": "Ann", "username": "ann", "started": ["alpha_ptb_bot", "beta_ptb_bot"]},
        {"id": 43, "first_name": "Bob"},
        {"id": 44, "first_name": "Cid", "started": ["alpha_ptb_bot"], "blocked": ["alpha_ptb_bot"]},
    ],
    "groups": [
        {"id": -5, "type": "group", "title": "Old", "members": ["alpha_ptb_bot"], "migrated_to": -1000000000005},
    ],
    "updates": [
        {"bot": "alpha_ptb_bot", "message": {"chat_id": 42, "text": "/start"}},
        {"bot": "alpha_ptb_bot", "callback_query": {"from": 42, "data": "ok"}},
    ],
}


def main():
    checks = Checks()
    done = {"start": threading.Event(), "callback": threading.Event()}
    with Simulator(sys.argv[1], SCENARIO) as sim:
        base_url, base_file_url = f"{sim.url}/bot", f"{sim.url}/file/bot"

        def start(update, context):
            try:
                run_start(update, context, checks)
            except Exception as e:  # recorded, so the check fails instead of hanging
                checks.check("start handler", False, f"raised {type(e).__name__}: {e}")
            finally:
                done["start"].set()

        def callback(update, context):
            try:
                query = update.callback_query
                checks.check("callback data", query.data == "ok")
                checks.check("answerCallbackQuery", query.answer(text="thanks") is True)
                checks.expect_error("a callback query is answered once", lambda: query.answer(), BadRequest,
                                    "Query is too old and response timeout expired or query id is invalid")
            finally:
                done["callback"].set()

        updater = Updater(token=ALPHA, base_url=base_url, base_file_url=base_file_url, use_context=True)
        updater.dispatcher.add_handler(CommandHandler("start", start))
        updater.dispatcher.add_handler(CallbackQueryHandler(callback))
        # The standard loop: deleteWebhook, then getUpdates long polling.
        updater.start_polling(timeout=1, drop_pending_updates=False)
        for name, event in done.items():
            checks.check(f"{name} update handled", event.wait(30))
        updater.stop()

        # 429 exactly as from Telegram: a fresh chat takes a burst of 3, then
        # RetryAfter with Telegram's integer seconds.
        beta = Bot(BETA, base_url=base_url, base_file_url=base_file_url)
        sent = 0
        retry = None
        for i in range(6):
            try:
                beta.send_message(42, f"burst {i}")
                sent += 1
            except RetryAfter as e:
                retry = e
                break
        checks.check("burst of 3 per chat", sent == 3, f"(sent {sent})")
        checks.check("RetryAfter after the burst", retry is not None)
        if retry is not None:
            checks.check("retry_after is whole seconds", retry.retry_after == 1, f"(got {retry.retry_after})")
    return checks.report()


def run_start(update, context, checks):
    bot = context.bot
    chat_id = update.effective_chat.id
    checks.check("getMe", bot.username == "alpha_ptb_bot", f"(got {bot.username})")
    checks.check("setMyCommands", bot.set_my_commands([BotCommand("start", "say hello")]) is True)
    checks.check("getMyCommands", [c.command for c in bot.get_my_commands()] == ["start"])
    checks.check("sendChatAction", bot.send_chat_action(chat_id, ChatAction.TYPING) is True)

    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("ok", callback_data="ok")]])
    hello = update.message.reply_text("hello <b>Ann</b>", parse_mode="HTML", reply_markup=keyboard)
    checks.check("sendMessage with HTML", hello.text == "hello Ann", f"(got {hello.text!r})")

    # Uploads (multipart) and downloads (getFile, then the percent-encoded file URL).
    photo = bot.send_photo(chat_id, photo=io.BytesIO(PHOTO), caption="a picture")
    photo_file = bot.get_file(photo.photo[-1].file_id)
    checks.check("photo round trip", bytes(photo_file.download_as_bytearray()) == PHOTO)
    document = bot.send_document(chat_id, document=io.BytesIO(NOTES), filename="notes.txt")
    checks.check("document name", document.document.file_name == "notes.txt")
    notes = bot.get_file(document.document.file_id)
    checks.check("document round trip", bytes(notes.download_as_bytearray()) == NOTES)

    caption = bot.edit_message_caption(chat_id, photo.message_id, caption="a better picture")
    checks.check("editMessageCaption", caption.caption == "a better picture")
    again = InlineKeyboardMarkup([[InlineKeyboardButton("again", callback_data="again")]])
    markup = bot.edit_message_reply_markup(chat_id, hello.message_id, reply_markup=again)
    checks.check("editMessageReplyMarkup", markup.reply_markup.inline_keyboard[0][0].text == "again")
    checks.expect_error("message is not modified", lambda: bot.edit_message_reply_markup(
        chat_id, hello.message_id, reply_markup=again), BadRequest, "Message is not modified")
    checks.check("deleteMessage", bot.delete_message(chat_id, document.message_id) is True)
    checks.expect_error("deleted twice", lambda: bot.delete_message(chat_id, document.message_id), BadRequest,
                        "Message to delete not found")
    chat = bot.get_chat(chat_id)
    checks.check("getChat", chat.first_name == "Ann" and chat.username == "ann")
    checks.check("getChatMember", bot.get_chat_member(chat_id, 42).status == "member")

    # Telegram's refusals, as Telegram words them.
    checks.expect_error("a user who never started the bot", lambda: bot.send_message(43, "hi"), Unauthorized,
                        "bot can't initiate conversation with a user")
    checks.expect_error("a user who blocked the bot", lambda: bot.send_message(44, "hi"), Unauthorized,
                        "bot was blocked by the user")
    checks.expect_error("text over 4096 characters", lambda: bot.send_message(chat_id, "x" * 4097), BadRequest,
                        "Message is too long")
    # python-telegram-bot strips "Bad Request: " and capitalizes the rest (lowering every other letter).
    checks.expect_error("malformed HTML", lambda: bot.send_message(chat_id, "<b>bold", parse_mode="HTML"),
                        BadRequest, "Can't parse entities: can't find end tag corresponding to start tag \"b\"")
    checks.expect_error("malformed MarkdownV2", lambda: bot.send_message(chat_id, "1.5", parse_mode="MarkdownV2"),
                        BadRequest, "character '.' is reserved and must be escaped with the preceding '\\'")
    migrated = checks.expect_error("a migrated group", lambda: bot.send_message(-5, "hi"), ChatMigrated, "")
    if migrated is not None:
        checks.check("migrate_to_chat_id", migrated.new_chat_id == -1000000000005)
    # Another bot's file id is not this bot's: file ids are per bot.
    beta = Bot(BETA, base_url=bot.base_url[:-len(bot.token)], base_file_url=bot.base_file_url[:-len(bot.token)])
    checks.expect_error("another bot's file_id", lambda: beta.get_file(document.document.file_id), BadRequest,
                        "Invalid file_id")


if __name__ == "__main__":
    sys.exit(main())

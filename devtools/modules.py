"""Teaching modules ("modul ajar") as Indonesian schools write them, for retrieval evaluation.

tests/data/modules_id/*.json hold, per grade/subject folder, the hand-written part of each
lesson (title, learning objectives, trigger questions, reading material, glossary). This module
wraps each lesson in the template that curriculum modules repeat across a subject: general
information, Pancasila student profile, learning activities, assessment and rubric, reflection
and references. The result is what real modules look like to a search engine: long, multi-page,
with most of the text shared by every lesson of the subject, and near-duplicate lessons
(part 1 / part 2 of a topic). Language lessons mix Indonesian and English.

`module_lessons(folder)` gives [{file, pages}] in the shape `retrieval_eval.write_lessons`
turns into PDFs; `lesson_texts(folder)` gives each lesson's whole text (for the paraphrase
overlap check in bench/paraphrase_overlap.py).
"""

from __future__ import annotations

import json
from pathlib import Path

DEFAULT_FOLDER = Path(__file__).resolve().parents[1] / "tests" / "data" / "modules_id"

_PROFILE = (
    "Profil Pelajar Pancasila: beriman, bertakwa kepada Tuhan Yang Maha Esa, dan berakhlak "
    "mulia; berkebinekaan global; bergotong royong; mandiri; bernalar kritis; kreatif."
)

_HEADINGS = {
    "id": {
        "objectives": "Tujuan Pembelajaran",
        "meaning": "Pemahaman Bermakna",
        "trigger": "Pertanyaan Pemantik",
        "material": "Bahan Bacaan Guru dan Peserta Didik",
        "glossary": "Glosarium",
    },
    "mixed": {
        "objectives": "Tujuan Pembelajaran (Learning Objectives)",
        "meaning": "Pemahaman Bermakna (Meaningful Understanding)",
        "trigger": "Pertanyaan Pemantik (Guiding Questions)",
        "material": "Bahan Bacaan (Reading Material)",
        "glossary": "Glosarium (Glossary)",
    },
}


def _general_page(subject: dict, lesson: dict, number: int) -> str:
    h = _HEADINGS[subject["language"]]
    objectives = "\n".join(
        f"{i}. Peserta didik mampu {text}." for i, text in enumerate(lesson["objectives"], 1)
    )
    triggers = "\n".join(f"- {q}" for q in lesson["pemantik"])
    return (
        f"MODUL AJAR {subject['subject'].upper()}\n"
        f"Kelas {subject['grade']} / Fase {subject['fase']} - Modul {number}\n"
        f"{lesson['title']}\n\n"
        "A. INFORMASI UMUM\n"
        f"Nama penyusun: Tim MGMP {subject['subject']}\n"
        f"Satuan pendidikan: {subject['school']}\n"
        "Tahun pelajaran: 2024/2025, semester ganjil\n"
        "Alokasi waktu: 2 x 40 menit (2 JP) per pertemuan, 2 pertemuan\n"
        "Kompetensi awal: peserta didik telah mempelajari materi pada modul sebelumnya dan "
        "terbiasa bekerja dalam kelompok.\n"
        f"{_PROFILE}\n"
        "Sarana dan prasarana: LCD proyektor, laptop, papan tulis, buku siswa, lembar kerja "
        "peserta didik (LKPD), jaringan internet sekolah.\n"
        "Target peserta didik: peserta didik reguler, peserta didik dengan kesulitan belajar, "
        "dan peserta didik dengan pencapaian tinggi.\n"
        f"Model pembelajaran: {subject['model']}, tatap muka.\n\n"
        "B. KOMPONEN INTI\n"
        f"{h['objectives']}:\nSetelah mengikuti kegiatan pembelajaran, diharapkan:\n"
        f"{objectives}\n\n"
        f"{h['meaning']}:\nMateri {lesson['title']} bermanfaat untuk memahami lingkungan "
        "sekitar dan memecahkan masalah dalam kehidupan sehari-hari.\n\n"
        f"{h['trigger']}:\n{triggers}"
    )


def _activities_page(subject: dict, lesson: dict) -> str:
    return (
        "C. KEGIATAN PEMBELAJARAN\n"
        "Pertemuan 1\n"
        "Kegiatan pendahuluan (10 menit):\n"
        "1. Guru membuka pelajaran dengan salam dan mengajak peserta didik berdoa bersama.\n"
        "2. Guru memeriksa kehadiran peserta didik dan kerapian kelas.\n"
        "3. Apersepsi: guru mengaitkan materi dengan pengalaman peserta didik dan mengajukan "
        "pertanyaan pemantik.\n"
        "4. Guru menyampaikan tujuan pembelajaran dan kriteria ketercapaian tujuan "
        "pembelajaran (KKTP).\n"
        "Kegiatan inti (60 menit):\n"
        "1. Peserta didik dibagi menjadi kelompok beranggotakan 4-5 orang secara heterogen.\n"
        f"2. Setiap kelompok menerima LKPD tentang {lesson['title']}.\n"
        "3. Peserta didik mengamati tayangan video dan membaca bahan bacaan, lalu mencatat "
        "hal-hal penting.\n"
        "4. Guru berkeliling membimbing kelompok yang mengalami kesulitan.\n"
        "5. Setiap kelompok mempresentasikan hasil diskusi; kelompok lain menanggapi.\n"
        "6. Guru memberikan penguatan dan meluruskan miskonsepsi.\n"
        "Kegiatan penutup (10 menit):\n"
        "1. Peserta didik bersama guru menyimpulkan pembelajaran.\n"
        "2. Peserta didik mengisi lembar refleksi.\n"
        "3. Guru menyampaikan rencana pembelajaran pertemuan berikutnya.\n"
        "4. Pelajaran ditutup dengan doa dan salam.\n\n"
        "Pertemuan 2\n"
        "Peserta didik mengerjakan tugas proyek kelompok dan asesmen formatif. Guru memberikan "
        "umpan balik terhadap hasil kerja setiap kelompok."
    )


def _material_pages(subject: dict, lesson: dict) -> list[str]:
    h = _HEADINGS[subject["language"]]
    paragraphs = lesson["content"]
    half = (len(paragraphs) + 1) // 2
    first = f"D. {h['material'].upper()}\n{lesson['title']}\n\n" + "\n\n".join(paragraphs[:half])
    glossary = "\n".join(f"- {g}" for g in lesson["glossary"])
    second = "\n\n".join(paragraphs[half:]) + f"\n\n{h['glossary']}:\n{glossary}"
    return [first, second]


def _assessment_page(subject: dict, lesson: dict) -> str:
    return (
        "E. ASESMEN\n"
        "1. Asesmen diagnostik (non-kognitif dan kognitif) di awal pembelajaran.\n"
        "2. Asesmen formatif: observasi diskusi kelompok, presentasi, dan LKPD.\n"
        "3. Asesmen sumatif: tes tertulis pilihan ganda dan uraian.\n\n"
        "Rubrik penilaian presentasi kelompok:\n"
        "Sangat baik (4): isi lengkap dan benar, penyampaian runtut, semua anggota berperan.\n"
        "Baik (3): isi benar dengan sedikit kekurangan, penyampaian cukup runtut.\n"
        "Cukup (2): isi kurang lengkap, penyampaian kurang runtut.\n"
        "Perlu bimbingan (1): isi tidak sesuai, penyampaian tidak runtut.\n"
        "Nilai akhir = jumlah skor / skor maksimal x 100.\n\n"
        "F. PENGAYAAN DAN REMEDIAL\n"
        "Pengayaan diberikan kepada peserta didik yang telah mencapai KKTP berupa bacaan dan "
        "soal tingkat lanjut. Remedial diberikan kepada peserta didik yang belum mencapai KKTP "
        "berupa bimbingan individu dan tes ulang.\n\n"
        "G. REFLEKSI\n"
        "Refleksi guru: Apakah tujuan pembelajaran tercapai? Kesulitan apa yang dialami "
        "peserta didik? Apa yang perlu diperbaiki pada pertemuan berikutnya?\n"
        "Refleksi peserta didik: Bagian mana yang paling menarik? Bagian mana yang masih "
        "sulit dipahami?\n\n"
        "H. DAFTAR PUSTAKA\n"
        f"Kementerian Pendidikan, Kebudayaan, Riset, dan Teknologi. 2021. Buku Siswa "
        f"{subject['subject']} untuk Kelas {subject['grade']}. Jakarta: Pusat Kurikulum dan "
        "Perbukuan."
    )


def module_lessons(folder: Path = DEFAULT_FOLDER) -> list[dict]:
    """Every lesson of every subject file in `folder` as {file, pages}, pages as texts."""
    lessons = []
    for path in sorted(Path(folder).glob("*.json")):
        subject = json.loads(path.read_text(encoding="utf-8"))
        for number, lesson in enumerate(subject["lessons"], 1):
            pages = [
                _general_page(subject, lesson, number),
                _activities_page(subject, lesson),
                *_material_pages(subject, lesson),
                _assessment_page(subject, lesson),
            ]
            lessons.append({"file": f"{subject['folder']}/{lesson['file']}", "pages": pages})
    return lessons


def lesson_texts(folder: Path = DEFAULT_FOLDER) -> dict[str, str]:
    """`<grade>/<subject>/<file>` → the lesson's whole text."""
    return {lesson["file"]: "\n\n".join(lesson["pages"]) for lesson in module_lessons(folder)}

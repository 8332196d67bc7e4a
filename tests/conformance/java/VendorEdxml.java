import com.vnpt.xml.base.Content;
import com.vnpt.xml.base.attachment.Attachment;
import com.vnpt.xml.base.header.Bussiness;
import com.vnpt.xml.base.header.Header;
import com.vnpt.xml.base.header.Organization;
import com.vnpt.xml.base.header.ResponseFor;
import com.vnpt.xml.base.header.SignerInfo;
import com.vnpt.xml.base.header.StaffInfo;
import com.vnpt.xml.base.header.TraceHeader;
import com.vnpt.xml.base.header.TraceHeaderList;
import com.vnpt.xml.ed.Ed;
import com.vnpt.xml.ed.builder.EdXmlBuilder;
import com.vnpt.xml.ed.header.Code;
import com.vnpt.xml.ed.header.DocumentType;
import com.vnpt.xml.ed.header.MessageHeader;
import com.vnpt.xml.ed.header.OtherInfo;
import com.vnpt.xml.ed.header.PromulgationInfo;
import com.vnpt.xml.ed.parser.EdXmlParser;
import com.vnpt.xml.status.Status;
import com.vnpt.xml.status.builder.StatusXmlBuilder;
import com.vnpt.xml.status.header.MessageStatus;
import com.vnpt.xml.status.parser.StatusXmlParser;
import java.io.File;
import java.io.FileInputStream;
import java.io.InputStream;
import java.nio.file.Files;
import java.security.MessageDigest;
import java.text.SimpleDateFormat;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Date;
import java.util.List;

/**
 * The axis vendor's edXML library (EdXML102), driven the way an agency's system drives it.
 *
 * build-ed OUT_DIR FROM TO DOCUMENT_ID FILE...   writes a document with FILE... attached
 * build-status OUT_DIR FROM ANSWERED_ORGAN DOCUMENT_ID CODE
 * parse-ed FILE | parse-status FILE             prints what the vendor parser reads
 *
 * Builders print "OUT path"; parsers print one "FIELD name=value" line per field read,
 * in the field names of lienthong's edxml.summary, for the Python test to compare.
 */
public final class VendorEdxml {
    private static final SimpleDateFormat DAY = new SimpleDateFormat("yyyy/MM/dd");
    private static final SimpleDateFormat TIME = new SimpleDateFormat("yyyy/MM/dd HH:mm:ss");

    private VendorEdxml() {}

    private static void field(String name, Object value) {
        System.out.println("FIELD " + name + "=" + (value == null ? "" : value.toString().replace("\n", "\\n")));
    }

    private static String day(Date d) {
        return d == null ? "" : DAY.format(d);
    }

    private static String sha256(File f) throws Exception {
        MessageDigest md = MessageDigest.getInstance("SHA-256");
        byte[] digest = md.digest(Files.readAllBytes(f.toPath()));
        StringBuilder out = new StringBuilder();
        for (byte b : digest) {
            out.append(String.format("%02x", b));
        }
        return out.toString();
    }

    private static Organization org(String code, String name) {
        return new Organization(code, "Văn phòng", name, "Số 1 Lê Hồng Phong", "vanthu@example.gov.vn",
                "0238 3844 000", "0238 3844 001", "https://example.gov.vn");
    }

    static void buildEd(String[] a) throws Exception {
        String out = a[1];
        Date now = new Date();
        MessageHeader header = new MessageHeader();
        header.setFrom(org(a[2], "UBND tỉnh Nghệ An"));
        List<Organization> toes = new ArrayList<>();
        toes.add(org(a[3], "Sở Tài chính"));
        header.setToes(toes);
        header.setDocumentId(a[4]);
        header.setCode(new Code("7816", "UBND-VP"));
        header.setPromulgationInfo(new PromulgationInfo("Nghệ An", now));
        header.setDocumentType(new DocumentType(1, "Công văn"));
        header.setSubject("V/v báo cáo tình hình thực hiện dự toán ngân sách");
        header.setContent("Đề nghị các sở báo cáo trước ngày 15.");
        header.setSignerInfo(new SignerInfo("Chủ tịch", "Chủ tịch UBND tỉnh", "Nguyễn Văn A"));
        header.setDueDate(now);
        header.setToPlaces(Arrays.asList("Sở Tài chính", "Lưu VT"));
        header.setOtherInfo(new OtherInfo(1, "Trong tỉnh", "VT", 2, 3));
        TraceHeaderList traces = new TraceHeaderList();
        traces.addTraceHeader(new TraceHeader(a[2], now));
        traces.setBussiness(new Bussiness(a[4], "0", "Ban hành mới", "0"));
        Ed ed = new Ed(new Header(header, traces), new ArrayList<Attachment>());
        for (int i = 5; i < a.length; i++) {
            File f = new File(a[i]);
            ed.addAttachment(new Attachment(String.valueOf(i - 4), f.getName(), "Tệp " + f.getName(), f));
        }
        Content content = EdXmlBuilder.build(ed, out);
        System.out.println("OUT " + content.getContent().getAbsolutePath());
    }

    static void buildStatus(String[] a) throws Exception {
        String out = a[1];
        Date now = new Date();
        ResponseFor rf = new ResponseFor(a[3], "7816/UBND-VP", now, a[4]);
        MessageStatus message = new MessageStatus(rf, org(a[2], "Sở Tài chính"), a[5],
                "Đã tiếp nhận và vào sổ văn bản đến", new StaffInfo("Văn phòng Sở", "Văn thư", "", "", "vanthu@example.gov.vn", "0912345678"));
        message.setTimestamp(now);
        Content content = StatusXmlBuilder.build(new Status(new Header(message)), out);
        System.out.println("OUT " + content.getContent().getAbsolutePath());
    }

    static void parseEd(String path) throws Exception {
        Ed ed;
        try (InputStream in = new FileInputStream(path)) {
            ed = EdXmlParser.getInstance().parse(in);
        }
        MessageHeader h = (MessageHeader) ed.getHeader().getMessageHeader();
        field("kind", "document");
        field("document_id", h.getDocumentId());
        field("sender", h.getFrom().getOrganId());
        field("sender_name", h.getFrom().getOrganName());
        List<String> to = new ArrayList<>();
        for (Organization o : h.getToes()) {
            to.add(o.getOrganId());
        }
        field("recipients", String.join(",", to));
        field("code_number", h.getCode().getCodeNumber());
        field("code_notation", h.getCode().getCodeNotation());
        field("subject", h.getSubject());
        field("promulgation_date", day(h.getPromulgationInfo().getPromulgationDate()));
        TraceHeaderList traces = ed.getHeader().getTraceHeaderList();
        if (traces != null) {
            if (traces.getBussiness() != null) {
                field("business_type", traces.getBussiness().getBussinessDocType());
            }
            for (TraceHeader t : traces.getTraceHeaders()) {
                field("trace", t.getOrganId() + "@" + (t.getTimestamp() == null ? "" : TIME.format(t.getTimestamp())));
            }
        }
        for (Attachment att : ed.getAttachments()) {
            File c = att.getContent();
            field("attachment", att.getName() + "|" + att.getContentType() + "|"
                    + (c == null ? "" : sha256(c)));
        }
    }

    static void parseStatus(String path) throws Exception {
        Status status;
        try (InputStream in = new FileInputStream(path)) {
            status = StatusXmlParser.parse(in);
        }
        MessageStatus m = (MessageStatus) status.getHeader().getMessageHeader();
        field("kind", "status");
        field("document_id", m.getResponseFor().getDocumentId());
        field("sender", m.getFrom().getOrganId());
        field("sender_name", m.getFrom().getOrganName());
        field("status_code", m.getStatusCode());
        field("description", m.getDescription());
        field("timestamp", m.getTimestamp() == null ? "" : TIME.format(m.getTimestamp()));
    }

    public static void main(String[] a) throws Exception {
        switch (a[0]) {
            case "build-ed": buildEd(a); break;
            case "build-status": buildStatus(a); break;
            case "parse-ed": parseEd(a[1]); break;
            case "parse-status": parseStatus(a[1]); break;
            default: throw new IllegalArgumentException("unknown mode " + a[0]);
        }
    }
}
